#!/usr/bin/env bash
# The OpenAPI 3.1 document (GET /v1/openapi.json, quorumd openapi, quorumctl
# openapi): valid for an OpenAPI 3.1 validator (npm's
# @seriousme/openapi-schema-validator, installed by deploy/dev.sh test in
# tests/node), exactly the routes of `quorumd routes` with their roles, every
# path parameter declared, every authenticated route's 401 and 403 listed;
# served without a token; the validator itself refuses a broken document.
. "$(dirname "$0")/lib.sh"

VALIDATE="$QR_SOURCE_DIR/tests/node/node_modules/@seriousme/openapi-schema-validator/bin/validate-api-cli.js"
[ -f "$VALIDATE" ] || { echo "not ok - no OpenAPI validator: run deploy/dev.sh test (npm ci in tests/node)"; exit 1; }

D="$E2E_DIR/openapi.json"
"$QR_BIN_DIR/quorumd" openapi >"$D" && st=0 || st=$?
check "quorumd openapi: exit 0" 0 "$st"
check "it is OpenAPI 3.1" 3.1.0 "$(jq -r .openapi "$D")"
check "the validator: valid" true "$(node "$VALIDATE" "$D" | jq .valid)"

# The validator is not a rubber stamp: a response that is not an object fails.
jq '.paths["/healthz"].get.responses = "none"' "$D" >"$E2E_DIR/broken.json"
check "the validator refuses a broken document" false "$(node "$VALIDATE" "$E2E_DIR/broken.json" | jq .valid)"

# Exactly the route table: method, path (ids as *) and roles.
"$QR_BIN_DIR/quorumd" routes | jq -r '.method + " " + .path + " " + (.roles | join(","))' | sort >"$E2E_DIR/routes"
jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[]
       | (.key | ascii_upcase) + " " + ($p | gsub("{[^}]+}"; "*")) + " " + ((.value["x-quorum-roles"] // []) | join(","))' \
    "$D" | sort >"$E2E_DIR/documented"
check "the document lists exactly the routes of quorumd routes, with their roles" "" \
    "$(diff "$E2E_DIR/routes" "$E2E_DIR/documented")"
check "routes: $(wc -l <"$E2E_DIR/routes")" "$(wc -l <"$E2E_DIR/routes")" "$(jq '[.paths[] | keys[]] | length' "$D")"

# Every {param} of a path is declared as a path parameter of each operation.
check "every path parameter declared" "" "$(jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[]
    | .value.parameters as $ps | ($p | [scan("{([^}]+)}")[0]])[]
    | select(([$ps[]? | select(.in == "path") | .name] | index(.)) == null) | "\($p) \(.)"' "$D")"
# Every operation answers something 2xx; every authenticated one lists 401 and 403.
check "every operation has a 2xx answer" "" "$(jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[]
    | select([.value.responses | keys[] | select(startswith("2"))] | length == 0) | "\(.key) \($p)"' "$D")"
check "every authenticated operation lists 401 and 403" "" "$(jq -r '.paths | to_entries[] | .key as $p | .value
    | to_entries[] | select(.value.security != []) | select((.value.responses["401"] == null) or (.value.responses["403"] == null))
    | "\(.key) \($p)"' "$D")"
check "error answers carry the Error schema" '#/components/schemas/Error' \
    "$(jq -r '.components.responses.Conflict.content["application/json"].schema["$ref"]' "$D")"

start_broker
r=$(curl -sS --cacert "$CA" -o "$E2E_DIR/served.json" -w '%{http_code}' "$URL/v1/openapi.json")
check "GET /v1/openapi.json without a token: 200" 200 "$r"
check "it is the document quorumd openapi prints" "" "$(diff <(jq -S . "$D") <(jq -S . "$E2E_DIR/served.json"))"
r=$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' -X POST "$URL/v1/openapi.json")
check "POST /v1/openapi.json: 405" 405 "$r"

"$QR_BIN_DIR/quorumctl" openapi >"$E2E_DIR/ctl.json" && st=0 || st=$?
check "quorumctl openapi: exit 0" 0 "$st"
check "and the same document" "" "$(diff <(jq -S . "$D") <(jq -S . "$E2E_DIR/ctl.json"))"
"$QR_BIN_DIR/quorumctl" openapi extra >/dev/null 2>"$E2E_DIR/err" && st=0 || st=$?
check "quorumctl openapi extra: usage error 2" 2 "$st"
check "naming the argument" yes "$(grep -q "unexpected argument 'extra'" "$E2E_DIR/err" && echo yes)"

finish
