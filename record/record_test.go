package record

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

func TestKeyIsBounded(t *testing.T) {
	assert.Equal(t, "c.Y3JtLTAwMQ", Key("crm-001"), "docs/RECORDS.md's example")
	long := strings.Repeat("é", 300) // 600 bytes: a header may name a command so
	assert.Len(t, Key(long), 2+43, "a digest key")
	assert.True(t, strings.HasPrefix(Key(long), "d."))
	assert.LessOrEqual(t, len(Key(strings.Repeat("a", MaxPlainKey))), 2+344)
	assert.NotEqual(t, Key(long), Key(long+"x"))
}

func TestContentFingerprint(t *testing.T) {
	a := ContentFingerprint([]byte(`{"commandId":"c-1","name":"Jane","email":"j@example.com","mobile":"9876543210","tagId":"t","metadata":{"k":"v"},"pik":{"b":1,"a":{"y":2,"x":1}}}`))
	b := ContentFingerprint([]byte(` { "pik":{"a":{"x":1, "y":2},"b":1}, "tagId":"t","mobile":"9876543210","email":"j@example.com","name":" Jane ","commandId":"c-2"}`))
	assert.Equal(t, a, b, "commandId, metadata, member order and white space are not content")
	assert.NotEqual(t, a, ContentFingerprint([]byte(`{"name":"Jane","email":"j@example.com","mobile":"9876543210","tagId":"u"}`)))
	assert.NotEqual(t, ContentFingerprint([]byte("hello")), ContentFingerprint([]byte("hullo")), "a malformed body is digested as it is")
	assert.Equal(t, ContentFingerprint([]byte(`{"name":1}`)), ContentFingerprint([]byte(`{ "name" : 1 }`)), "an invalid body is compacted first")
	assert.True(t, strings.HasPrefix(a, "v1:") && len(a) == 3+32, a)
}

func TestFingerprintIsTakenAfterNormalisation(t *testing.T) {
	// Pinned before normalisation existed: records of content already in
	// its normal form keep their fingerprints.
	normal := `{"provider":"pik","name":"Jane","email":"j@example.com","mobile":"+919876510011","tagId":"t","companyName":"Acme","pik":{"b":1}}`
	assert.Equal(t, "v1:dbe659b1c801464bd675d35356f20b4b", ContentFingerprint([]byte(normal)), "normalised content keeps its fingerprint")
	assert.Equal(t, "v1:235b81ae1213bea1dcd609703aee17f9",
		ContentFingerprint([]byte(`{"name":"Jane","email":"j@example.com","mobile":"9876543210","tagId":"t"}`)), "a command without a provider keeps its fingerprint")
	for _, body := range []string{
		`{"provider":"Pik","name":"Jane","email":"j@example.com","mobile":"+91 98765 10011","tagId":"t","companyName":"Acme","pik":{"b":1}}`,
		`{"provider":" PIK ","name":"Jane","email":"j@example.com","mobile":"+91-98765.10011","tagId":"t","companyName":"Acme","pik":{"b":1}}`,
	} {
		assert.Equal(t, ContentFingerprint([]byte(normal)), ContentFingerprint([]byte(body)), "%s is the same content", body)
	}
	assert.NotEqual(t, ContentFingerprint([]byte(normal)),
		ContentFingerprint([]byte(`{"provider":"pik","name":"Jane","email":"j@example.com","mobile":"+91 (98765) 10011","tagId":"t","companyName":"Acme","pik":{"b":1}}`)),
		"parentheses are not normalised away")
}

func TestAddAnswerKeepsTheLastTen(t *testing.T) {
	var r Record
	for i := range 13 {
		r.AddAnswer(Answer{Class: "transient", Upstream: contact.Upstream{HTTPStatus: 500 + i}})
	}
	require.Len(t, r.Answers, MaxAnswers)
	assert.Equal(t, 503, r.Answers[0].Upstream.HTTPStatus, "the oldest answers give way")
	assert.Equal(t, 512, r.Answers[9].Upstream.HTTPStatus)
	r.AddAnswer(Answer{Upstream: contact.Upstream{Message: strings.Repeat("é", 400)}})
	m := r.Answers[9].Upstream.Message
	assert.LessOrEqual(t, len(m), MaxAnswerMessage+len("…"), "a long message is cut")
	assert.True(t, utf8.ValidString(m), "at a rune boundary")
}
