#!/usr/bin/env bash
echo "aegis: nothing to run yet"
