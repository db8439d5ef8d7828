// CallContext: one tool call, normalised, as every front door hands it to the engine.
#ifndef AEGIS_ENGINE_CALL_CONTEXT_H_
#define AEGIS_ENGINE_CALL_CONTEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/status.h"
#include "policy/policy.h"

namespace aegis::engine {

struct CallContext {
  std::string tenant;  // empty: no tenant
  std::string agent;
  std::string tool;    // empty: resolve from request through the catalog
  std::string action;  // empty: resolve from request through the catalog
  common::Json params = common::Json::EmptyObject();
  // {method, host, path, headers, query} when the call is an HTTP request; an empty object
  // otherwise. host is normalised, path has no query string, header names are lower case.
  common::Json request = common::Json::EmptyObject();
  common::Json identity = common::Json::EmptyObject();  // verified token claims
  std::optional<policy::Micros> cost;                   // given by the caller
  int64_t now_unix_nanos = 0;
  // Stage 2: the agent and tenant of the agent token a front door verified, when the listener
  // requires one. The call's own agent and tenant must be these (else identity_mismatch).
  struct VerifiedAgent {
    std::string agent, tenant;
  };
  std::optional<VerifiedAgent> verified;
  // Stage 6: an override token presented with the call (X-Aegis-Override or override_token).
  std::string override_token;
  // The caller's W3C traceparent, when it sent one: the decision's span joins that trace.
  std::string traceparent;
  // A call that already happened (an SDK ran it in fail_open mode and reports it): decided for
  // the record only — no override token is redeemed, no limit is checked or charged (it could
  // not be refused any more), and the service opens no approval.
  bool record_only = false;

  // Convenience views into `request`; empty when absent.
  std::string_view method() const;
  std::string_view host() const;
  std::string_view path() const;
};

struct CallParseOptions {
  common::JsonLimits json;
  // Whether the JSON may give `identity` (token claims) and `now` (an RFC 3339 time for the
  // call). Only trusted callers — policy tests and the CLI — may; front doors set identity from
  // a verified token and now from the clock.
  bool trusted = false;
  // Whether the call may leave out `agent`, because an agent token presented with it will name
  // the agent (front doors with agent tokens configured check that one of the two did).
  bool agent_from_token = false;
};

// Parses the decide-API call JSON (docs/decide-api.md) strictly: unknown fields, wrong types,
// invalid names, hosts or paths, duplicate keys and invalid UTF-8 are errors (InvalidArgument),
// oversize input is ResourceExhausted. `now_unix_nanos` stamps the call.
common::StatusOr<CallContext> ParseCall(std::string_view json, int64_t now_unix_nanos,
                                        const CallParseOptions& options = {});
common::StatusOr<CallContext> CallFromJson(common::Json json, int64_t now_unix_nanos,
                                           const CallParseOptions& options = {});

// Normalises a request path for policy matching: splits off the query, decodes
// percent-escapes of ordinary characters, and refuses encoded '/', '\' or NUL, dot segments,
// empty segments, control bytes and invalid UTF-8. Query parameters (decoded; a key given twice
// is refused) go to `query` when non-null.
common::StatusOr<std::string> NormalizePath(std::string_view raw, common::Json* query);

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_CALL_CONTEXT_H_
