package search

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// prefixSep separates an Amazon Bedrock AgentCore target name from the
// tool's own name, as in LambdaUsingSDK___check_warranty_status.
const prefixSep = "___"

// ToolWords splits a tool name into the words of its target prefix (the part
// before the last "___", if any) and the words of the tool's own name, split
// on camelCase, snake_case, '-' and '.'. Words are lowercased.
//
//	ToolWords("LambdaUsingSDK___check_warranty_status")
//	  = [lambda using sdk], [check warranty status]
func ToolWords(name string) (prefix, words []string) {
	if i := strings.LastIndex(name, prefixSep); i > 0 && i+len(prefixSep) < len(name) {
		return SplitIdentifier(name[:i]), SplitIdentifier(name[i+len(prefixSep):])
	}
	return nil, SplitIdentifier(name)
}

// SplitIdentifier splits an identifier into lowercase words at '_', '-',
// '.', '/', ':' and camelCase boundaries. A run of capitals is one word
// (an acronym) unless its last capital starts a capitalized word:
// "LambdaUsingSDK" is lambda, using, sdk; "SDKClient" is sdk, client;
// "getHTTPResponse" is get, http, response. Digits stay with their word.
func SplitIdentifier(id string) []string {
	var out []string
	for _, part := range strings.FieldsFunc(id, isSeparator) {
		out = append(out, splitCamel(part)...)
	}
	return out
}

func isSeparator(r rune) bool {
	switch r {
	case '_', '-', '.', '/', ':':
		return true
	}
	return unicode.IsSpace(r)
}

func splitCamel(s string) []string {
	rs := []rune(s)
	var out []string
	start := 0
	for i := 1; i < len(rs); i++ {
		prev, cur := rs[i-1], rs[i]
		boundary := false
		switch {
		case (unicode.IsLower(prev) || unicode.IsDigit(prev)) && unicode.IsUpper(cur):
			boundary = true // getFoo, s3Upload
		case unicode.IsUpper(prev) && unicode.IsUpper(cur) && i+1 < len(rs) && unicode.IsLower(rs[i+1]):
			boundary = true // SDKClient: the C starts a word
		}
		if boundary {
			out = append(out, strings.ToLower(string(rs[start:i])))
			start = i
		}
	}
	return append(out, strings.ToLower(string(rs[start:])))
}

// expandIdentifiers rewrites free text so that identifiers inside it are
// searchable by their words: every whitespace-separated token that is a
// compound (snake_case, camelCase, kebab-case, dotted) is followed by its
// words, and a two-word compound also by its words joined ("GitHub" gives
// "github git hub", "e-mail" gives "e-mail e mail email"), so that both the
// compound and its parts match. The same rewrite runs on documents and
// queries, so they always agree. Text without a compound is returned as it
// is, and the rest of the text keeps its white space: the analyzer splits at
// any white space alike.
func expandIdentifiers(text string) string {
	var b strings.Builder
	done := 0 // text[:done] is in b
	for i := 0; i < len(text); {
		size := spaceAt(text, i)
		if size > 0 {
			i += size
			continue
		}
		j := i + 1
		for j < len(text) && spaceAt(text, j) == 0 {
			j++
		}
		core := strings.TrimFunc(text[i:j], func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		i = j
		if !isCompound(core) {
			continue
		}
		parts := SplitIdentifier(core)
		if len(parts) < 2 {
			continue
		}
		if done == 0 {
			b.Grow(len(text) + len(text)/4)
		}
		b.WriteString(text[done:j])
		for _, p := range parts {
			b.WriteByte(' ')
			b.WriteString(p)
		}
		if len(parts) == 2 {
			b.WriteByte(' ')
			b.WriteString(parts[0] + parts[1])
		}
		done = j
	}
	if done == 0 {
		return text
	}
	b.WriteString(text[done:])
	return b.String()
}

// spaceAt returns the length of the white space character at s[i], or 0
// when there is none (as unicode.IsSpace, without decoding ASCII).
func spaceAt(s string, i int) int {
	if c := s[i]; c < utf8.RuneSelf {
		return int(asciiSpace[c])
	}
	if r, size := utf8.DecodeRuneInString(s[i:]); unicode.IsSpace(r) {
		return size
	}
	return 0
}

// asciiSpace is 1 for the ASCII white space characters (as unicode.IsSpace).
var asciiSpace = [utf8.RuneSelf]uint8{'\t': 1, '\n': 1, '\v': 1, '\f': 1, '\r': 1, ' ': 1}

// isCompound reports whether tok has an inner separator or a lower-to-upper
// case change, i.e. whether SplitIdentifier would split it.
func isCompound(tok string) bool {
	if isASCII(tok) { // the same test, byte by byte
		for i := 1; i < len(tok); i++ {
			c, p := tok[i], tok[i-1]
			if c == '_' || c == '-' || c == '.' || c == '/' || c == ':' || c == ' ' || c >= '\t' && c <= '\r' ||
				(p >= 'a' && p <= 'z' || p >= '0' && p <= '9') && c >= 'A' && c <= 'Z' {
				return true
			}
		}
		return false
	}
	var prev rune
	for i, r := range tok {
		if i > 0 && (isSeparator(r) || (unicode.IsLower(prev) || unicode.IsDigit(prev)) && unicode.IsUpper(r)) {
			return true
		}
		prev = r
	}
	return false
}

// queryPhrases are multi-word expressions rewritten to one word before a
// query is analyzed, so that the synonym table can treat them as a unit
// (the stop-word filter would otherwise drop "up" from "look up").
var queryPhrases = strings.NewReplacer(
	"look up", "lookup",
	"looking up", "lookup",
	"set up", "setup",
	"sign in", "login",
	"log in", "login",
	"e-mail", "email",
	"k8s", "kubernetes",
)
