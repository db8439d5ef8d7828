// The MCP gateway's message work (docs/mcp.md): server-sent-event framing of the streamable HTTP
// transport, and the JSON-RPC answers Aegis gives or rewrites. Pure functions of bytes; the
// proxy (proxy.cc) does the I/O.
#ifndef AEGIS_FRONTDOORS_PROXY_MCP_H_
#define AEGIS_FRONTDOORS_PROXY_MCP_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/json.h"

namespace aegis::proxy::mcp {

// JSON-RPC error codes (JSON-RPC 2.0 section 5.1).
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kInvalidParams = -32602;

// Splits a text/event-stream into events (WHATWG HTML, server-sent events): an event ends at
// a blank line; lines end in CRLF, LF or CR. Bytes arrive in pieces of any size.
class SseSplitter {
 public:
  // Adds bytes. Returns false once the buffered, unfinished event exceeds `max_event_bytes`
  // (the stream should then be cut).
  bool Feed(std::string_view bytes, size_t max_event_bytes);
  // The next complete event, as received (its blank line included), or nullopt.
  std::optional<std::string> Next();
  // What is buffered and not yet a complete event.
  const std::string& pending() const { return buffer_; }

 private:
  std::string buffer_;
  size_t scanned_ = 0;  // bytes of buffer_ already searched for an event's end
};

// The data of an event: its `data:` lines' values joined with '\n' (one optional space after
// the colon removed), or nullopt when it has none (a comment or a retry-only event).
std::optional<std::string> EventData(std::string_view event);
// The event with its data replaced by `data` (which must hold no line breaks — compact JSON);
// its other fields (id, event, retry) are kept. Ends in "\n\n".
std::string ReplaceEventData(std::string_view event, std::string_view data);

// {"jsonrpc":"2.0","id":<id or null>,"error":{"code":code,"message":message}}
std::string ErrorMessage(const common::Json* id, int code, std::string_view message);

// The tools/call result Aegis answers for a refused call, without the upstream ever seeing it:
// {"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":...}],"isError":true,
//  "_meta":{"aegis/decision":<decision>}}}, `decision` being the decision JSON of the decide API.
// The text says what was decided, why (reason code, rule, message, detail), the decision id, and
// for approval_needed the approval id. The decision is in _meta, not structuredContent: clients
// check structuredContent against the tool's outputSchema, even in an error result.
std::string RefusalResult(const common::Json& id, const common::Json& decision);

// In a tools/list response (`message` = {"jsonrpc","id","result":{"tools":[...]}}), keeps only
// the tools whose name `offered` accepts. Returns how many it removed; a message of another
// shape is left alone (0).
size_t FilterTools(common::Json& message, const std::function<bool(std::string_view)>& offered);

}  // namespace aegis::proxy::mcp

#endif  // AEGIS_FRONTDOORS_PROXY_MCP_H_
