package registry

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestListDecoder: servers come back in the order added, with their
// state, for lists shorter than a batch and spanning many; the documents'
// buffer may be reused between Adds; the first undecodable document (in
// order) is the error.
func TestListDecoder(t *testing.T) {
	docs := catalogDocs(t)
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, n := range []int{0, 1, listBatchRows - 1, listBatchRows, listBatchRows + 1, 10*listBatchRows + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			d := NewListDecoder()
			var want []*Server
			buf := make([]byte, 0, 64<<10)
			for i := range n {
				doc := docs[i%len(docs)]
				s, err := UnmarshalStorage(doc)
				if err != nil {
					t.Fatal(err)
				}
				s.Enabled, s.CreatedAt, s.UpdatedAt = i%3 != 0, created.Add(time.Duration(i)*time.Second), created
				want = append(want, s)
				buf = append(buf[:0], doc...) // the store's reused buffer
				d.Add(buf, s.Enabled, s.CreatedAt, s.UpdatedAt)
				for j := range buf {
					buf[j] = ' '
				}
			}
			got, err := d.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("%d servers, want %d", len(got), n)
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("server %d: %s, want %s", i, got[i].Path, want[i].Path)
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		d := NewListDecoder()
		for i := range 5 * listBatchRows {
			doc := docs[0]
			switch i {
			case 2*listBatchRows + 3:
				doc = []byte(`{"server_name": "first broken"`)
			case 4*listBatchRows + 1:
				doc = []byte(`{"server_name": 1}`)
			}
			d.Add(doc, true, time.Time{}, time.Time{})
		}
		_, err := d.Finish()
		if err == nil || !strings.Contains(err.Error(), "unexpected end") {
			t.Fatalf("error %v, want the first broken document's", err)
		}
	})
}
