package gateway

import (
	"encoding/json"
	"errors"

	"github.com/mcpgw/mcpgw/registry"
)

// scanRPC reads what the relay needs from a JSON-RPC body — each message's
// jsonrpc version, id, method and params.name — without decoding the rest:
// arguments and _meta are skipped, not built. The body must already be valid
// JSON (json.Valid), which scanRPC relies on to skip values by brackets.
// It returns the same messages and errors as decoding with encoding/json.
func scanRPC(body []byte) ([]rpcMessage, error) {
	i := registry.SkipJSONSpace(body, 0)
	if i == len(body) {
		return nil, errors.New("empty body")
	}
	var msgs []rpcMessage
	switch body[i] {
	case '{':
		m, _, err := scanMessage(body, i)
		if err != nil {
			return nil, err
		}
		msgs = []rpcMessage{m}
	case '[':
		i = registry.SkipJSONSpace(body, i+1)
		for i < len(body) && body[i] != ']' {
			if body[i] != '{' {
				return nil, errors.New("batch element is not an object")
			}
			m, next, err := scanMessage(body, i)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
			i = registry.SkipJSONSpace(body, next)
			if i < len(body) && body[i] == ',' {
				i = registry.SkipJSONSpace(body, i+1)
			}
		}
		if len(msgs) == 0 {
			return nil, errors.New("empty batch")
		}
	default:
		return nil, errors.New("body is not a JSON-RPC object or batch")
	}
	for _, m := range msgs {
		if m.JSONRPC != "2.0" {
			return nil, errors.New(`"jsonrpc" must be "2.0"`)
		}
		if m.Method == "" && !bool(m.Result) && !bool(m.Error) {
			return nil, errors.New("message has no method, result or error")
		}
	}
	return msgs, nil
}

// scanMessage reads one message object starting at body[i] == '{' and
// returns the index after its closing brace.
func scanMessage(body []byte, i int) (rpcMessage, int, error) {
	var m rpcMessage
	err := scanObject(body, i, func(key []byte, v []byte) error {
		switch string(key) {
		case "jsonrpc":
			return scanString(v, &m.JSONRPC, "jsonrpc")
		case "method":
			return scanString(v, &m.Method, "method")
		case "id":
			m.ID = v
		case "result":
			m.Result = true
		case "error":
			m.Error = true
		case "params":
			if len(v) > 0 && v[0] == '{' {
				return scanObject(v, 0, func(k, pv []byte) error {
					if string(k) == "name" && len(pv) > 0 && pv[0] == '"' {
						return scanString(pv, &m.Params.Name, "params.name")
					}
					return nil
				}, nil)
			}
		}
		return nil
	}, &i)
	return m, i, err
}

// scanObject calls fn for each key and raw value of the object at body[i].
// When end is not nil it receives the index after the closing brace.
func scanObject(body []byte, i int, fn func(key, value []byte) error, end *int) error {
	if i >= len(body) || body[i] != '{' {
		return errors.New("not an object")
	}
	i = registry.SkipJSONSpace(body, i+1)
	for i < len(body) && body[i] != '}' {
		ks := i
		ke := registry.SkipJSONValue(body, i)
		key := body[ks+1 : ke-1]
		i = registry.SkipJSONSpace(body, ke)
		i = registry.SkipJSONSpace(body, i+1) // the ':'
		vs := i
		ve := registry.SkipJSONValue(body, i)
		if hasEscape(key) {
			var k string
			if err := json.Unmarshal(body[ks:ke], &k); err != nil {
				return err
			}
			key = []byte(k)
		}
		if err := fn(key, body[vs:ve]); err != nil {
			return err
		}
		i = registry.SkipJSONSpace(body, ve)
		if i < len(body) && body[i] == ',' {
			i = registry.SkipJSONSpace(body, i+1)
		}
	}
	if end != nil {
		*end = i + 1
	}
	return nil
}

func scanString(v []byte, dst *string, field string) error {
	if len(v) < 2 || v[0] != '"' {
		if string(v) == "null" {
			return nil
		}
		return errors.New(`"` + field + `" must be a string`)
	}
	if !hasEscape(v[1 : len(v)-1]) {
		*dst = string(v[1 : len(v)-1])
		return nil
	}
	return json.Unmarshal(v, dst)
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}
