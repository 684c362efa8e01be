package openfailures

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGroupMessageFoldsOneCause(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"transient failures outlasted 3 deliveries: instantpay circuit open until 2026-12-03T12:25:09Z: calls are held back",
			"transient failures outlasted 3 deliveries: instantpay circuit open until 2026-12-03T12:31:44.123Z: calls are held back"},
		{"rejected: request SBX6B115F79815981A37800000A refused", "rejected: request SBX6B115F79815981A37800000F refused"},
		{"event 1acfca4e-9a5b-5994-b506-70a3523743b4 lost", "event 6642af27-a6c5-5845-b307-1656a849a980 lost"},
	} {
		assert.Equal(t, groupMessage(tc.a), groupMessage(tc.b), "%q and %q are one cause", tc.a, tc.b)
	}
	assert.NotEqual(t, groupMessage("HTTP 503 from instantpay"), groupMessage("HTTP 429 from instantpay"), "status codes stay")
	assert.Equal(t, "the command breaks 1 rule: email must be a valid email address", groupMessage("the command breaks 1 rule: email must be a valid email address"))
}
