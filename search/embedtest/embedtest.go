// Package embedtest is a small deterministic OpenAI-compatible embeddings
// endpoint for tests of the finder's hybrid ranking. It embeds a text as a
// hashed bag of its words: lowercased, split at identifiers' boundaries,
// crudely stemmed, stop words dropped, and each word replaced by its concept
// when the server's concept map has one, so that a test can make two
// different wordings of one need similar ("money back" and "refund").
package embedtest

import (
	"encoding/json"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
)

// Options configure a Server.
type Options struct {
	// Dim is the vectors' dimension (default 256).
	Dim int
	// Concepts maps a word or phrase (as Words gives them, space-separated)
	// to a concept: where it occurs it counts as the concept, at
	// ConceptWeight, as a real model weighs what a text means over how it
	// is worded.
	Concepts map[string]string
	// ConceptWeight is a concept's weight relative to a word (default 4).
	ConceptWeight float64
	// APIKey, when set, must come as "Authorization: Bearer <key>".
	APIKey string
}

// Server is an httptest server on 127.0.0.1 answering POST /v1/embeddings.
type Server struct {
	// URL is the endpoint's full URL (…/v1/embeddings).
	URL  string
	opts Options
	srv  *httptest.Server

	requests atomic.Int64
	texts    atomic.Int64
	status   atomic.Int64 // answer this status instead of vectors when not 0
	delay    atomic.Int64 // nanoseconds to wait before answering

	mu     sync.Mutex
	models map[string]bool
}

// New starts a Server, closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dim <= 0 {
		opts.Dim = 256
	}
	s := &Server{opts: opts, models: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/embeddings", s.handle)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v1/embeddings"
	t.Cleanup(s.srv.Close)
	return s
}

// Requests returns how many requests reached the endpoint.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Texts returns how many texts the endpoint embedded.
func (s *Server) Texts() int { return int(s.texts.Load()) }

// Fail makes the endpoint answer status with an OpenAI-style error (0:
// answer normally again).
func (s *Server) Fail(status int) { s.status.Store(int64(status)) }

// Delay makes the endpoint wait d before answering.
func (s *Server) Delay(d time.Duration) { s.delay.Store(int64(d)) }

// Models returns the model names requests asked for.
func (s *Server) Models() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for m := range s.models {
		out = append(out, m)
	}
	return out
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	// The body is read first: only then does the server notice a client
	// that gives up waiting, and cancel r's context.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg, "type": "invalid_request_error"}})
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "POST only")
		return
	}
	if s.opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.APIKey {
		fail(http.StatusUnauthorized, "Incorrect API key provided")
		return
	}
	if st := int(s.status.Load()); st != 0 {
		fail(st, "the model is not available")
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
		fail(http.StatusBadRequest, "a JSON body with model and input is required")
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			fail(http.StatusBadRequest, "input must be a string or a list of strings")
			return
		}
		inputs = []string{one}
	}
	s.mu.Lock()
	s.models[req.Model] = true
	s.mu.Unlock()
	s.texts.Add(int64(len(inputs)))
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	data := make([]item, len(inputs))
	for i, in := range inputs {
		data[i] = item{Object: "embedding", Index: i, Embedding: Embed(in, s.opts)}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": req.Model, "data": data,
		"usage": map[string]int{"prompt_tokens": 0, "total_tokens": 0}})
}

// Embed is the Server's embedding of text: a unit vector of opts.Dim.
func Embed(text string, opts Options) []float32 {
	dim := opts.Dim
	if dim <= 0 {
		dim = 256
	}
	v := make([]float32, dim)
	weight := map[string]float64{}
	cw := opts.ConceptWeight
	if cw <= 0 {
		cw = 4
	}
	words := Words(text)
	for i := 0; i < len(words); {
		// The longest phrase of at most three words that is a concept.
		n, concept := 0, ""
		for l := min(3, len(words)-i); l >= 1; l-- {
			if c, ok := opts.Concepts[strings.Join(words[i:i+l], " ")]; ok {
				n, concept = l, c
				break
			}
		}
		if n > 0 {
			weight["concept:"+concept] += cw
			i += n
			continue
		}
		weight[words[i]]++
		i++
	}
	for w, n := range weight {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := h.Sum64()
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		// Sublinear in the count, as term frequency usually is.
		v[x%uint64(dim)] += sign * float32(math.Sqrt(n))
	}
	var ss float64
	for _, f := range v {
		ss += float64(f) * float64(f)
	}
	if ss > 0 {
		n := float32(1 / math.Sqrt(ss))
		for i := range v {
			v[i] *= n
		}
	}
	return v
}

// Words returns the stemmed, lowercased words of text that count, in order.
func Words(text string) []string {
	var out []string
	for _, tok := range strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		for _, w := range splitCamel(tok) {
			w = stem(strings.ToLower(w))
			if len(w) > 1 && !stop[w] {
				out = append(out, w)
			}
		}
	}
	return out
}

func splitCamel(s string) []string {
	var out []string
	start := 0
	rs := []rune(s)
	for i := 1; i < len(rs); i++ {
		if unicode.IsLower(rs[i-1]) && unicode.IsUpper(rs[i]) {
			out = append(out, string(rs[start:i]))
			start = i
		}
	}
	return append(out, string(rs[start:]))
}

// stem strips a few English endings: enough to make "refunds", "refunded"
// and "refunding" one word.
func stem(w string) string {
	for _, suf := range []string{"ing", "ed", "es", "s"} {
		if len(w) > len(suf)+3 && strings.HasSuffix(w, suf) {
			return strings.TrimSuffix(w, suf)
		}
	}
	return w
}

var stop = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be by can do for from has have how i in is it its
		me my of on or our so that the their them this to too up use want was we what when which will with you your`) {
		stop[w] = true
	}
}
