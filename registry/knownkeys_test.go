package registry

import "testing"

func TestOnlyKnownKeys(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{`{"server_name":"a","path":"/a","tool_list":[{"name":"x","schema":{"owner":"}{"}}]}`, true},
		{` { "server_name" : "a" , "num_tools" : 3 , "is_python" : false } `, true},
		{`{"server_name":"a","owner":"sre"}`, false},
		{`{"tool_list":[{"owner":1}],"team":{"a":[1,2]}}`, false},
		{`{"serv\u0065r_name":"a"}`, false}, // escaped key: fall back to the map
		{`{}`, true},
		{`[]`, false},
		{`{"server_name":"a"`, false},
	} {
		if got := onlyKnownKeys([]byte(tc.doc)); got != tc.want {
			t.Errorf("onlyKnownKeys(%s) = %v, want %v", tc.doc, got, tc.want)
		}
	}
}
