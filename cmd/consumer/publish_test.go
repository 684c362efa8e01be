package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/exit"
)

// goodFlags are publish flags of a command every rule accepts.
var goodFlags = []string{"--name", "Jane Doe", "--email", "jane@example.com", "--mobile", "+919876543210", "--tag-id", tagID}

func TestPublishChecksTheCommandFirst(t *testing.T) {
	e := newTestEnv(t)
	_, _, err := e.cli(t, "setup")
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"name":"","email":"not-an-email","mobile":"12"}`), 0o600))

	for _, tc := range []struct {
		name string
		args []string
		want []string // in the error
	}{
		{"no flags at all", nil, []string{"breaks 4 rules", "name is required", "email is required", "mobile is required", "tagId is required", "--no-validate"}},
		{"a bad email", []string{"--name", "Jane", "--email", "jane@", "--mobile", "+919876543210", "--tag-id", tagID},
			[]string{"breaks 1 rule", "email must be a valid email address"}},
		{"InstantPay's own rule", []string{"--provider", "instantpay", "--name", "Jane", "--email", "j@example.com", "--mobile", "9876543210", "--tag-id", "vip"},
			[]string{"tagId must be a 24-character hexadecimal id for InstantPay"}},
		{"InstantPay as the default provider", []string{"--default-provider", "instantpay", "--name", "Jane", "--email", "j@example.com", "--mobile", "9876543210", "--tag-id", "vip"},
			[]string{"tagId must be a 24-character hexadecimal id for InstantPay"}},
		{"an unknown provider", append([]string{"--provider", "paypal"}, goodFlags...), []string{`provider "paypal" is unknown; known providers: instantpay, pik`}},
		{"--file with a field flag", []string{"--file", bad, "--name", "a"}, []string{"--name cannot go with it"}},
		{"--file with --no-validate", []string{"--file", bad, "--no-validate"}, []string{"--no-validate cannot go with it"}},
		{"--timeout without --wait", append([]string{"--timeout", "5s"}, goodFlags...), []string{"give --wait too"}},
		{"a stray argument", append(goodFlags, "extra"), []string{`unexpected argument "extra"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.cli(t, append([]string{"publish"}, tc.args...)...)
			require.Error(t, err)
			assert.Equal(t, 2, exitCode(err), "a usage error")
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.Zero(t, e.commandsStored(t), "nothing was published")
		})
	}

	t.Run("a good command is published", func(t *testing.T) {
		_, stderr, err := e.cli(t, append([]string{"publish", "--provider", "pik"}, append(goodFlags[:6:6], "--tag-id", "vip")...)...)
		require.NoError(t, err)
		assert.Contains(t, stderr, "published contact.create")
		assert.NotContains(t, stderr, "warning")
	})
	t.Run("a bad command on purpose, from flags", func(t *testing.T) {
		before := e.commandsStored(t)
		_, stderr, err := e.cli(t, "publish", "--no-validate", "--name", "Jane")
		require.NoError(t, err)
		assert.Contains(t, stderr, "sending it anyway (--no-validate)")
		assert.Contains(t, stderr, "email is required")
		assert.Equal(t, before+1, e.commandsStored(t))
	})
	t.Run("a bad command on purpose, from a file", func(t *testing.T) {
		before := e.commandsStored(t)
		_, stderr, err := e.cli(t, "publish", "--file", bad)
		require.NoError(t, err)
		assert.Contains(t, stderr, "sending the file as it is")
		assert.Contains(t, stderr, "mobile must be 10 to 15 digits")
		assert.Equal(t, before+1, e.commandsStored(t))
	})
}

// TestPublishSaysWhenTheWindowDroppedOtherContent: within the stream's
// duplicate window, a command with a used commandId and other content is
// dropped by the stream itself; publish says so instead of showing the
// first command's outcome as if it were this one's.
func TestPublishSaysWhenTheWindowDroppedOtherContent(t *testing.T) {
	e := newTestEnv(t)
	e.start(t)
	first := []string{"publish", "--wait", "--command-id", "dup-1", "--name", "Jane", "--email", "jane@example.com", "--mobile", "+919876543210", "--tag-id", tagID}
	_, _, err := e.cli(t, first...)
	require.NoError(t, err)

	same := append([]string{}, first...)
	_, stderr, err := e.cli(t, same...)
	require.NoError(t, err, "the same content again is the same command: its outcome is shown")
	assert.Contains(t, stderr, "a duplicate within the stream's window")

	other := append([]string{}, first...)
	other[len(other)-5] = "jane.doe@example.com" // the email
	_, _, err = e.cli(t, other...)
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, err.Error(), "not stored")
	assert.Contains(t, err.Error(), "other content")
	assert.EqualValues(t, 1, e.commandsStored(t), "the stream holds the first command only")
}

// A publish the timeout cut before JetStream acknowledged it says so, and
// how to send it again without a second contact.
func TestShowOutcomeOfAnUnacknowledgedPublish(t *testing.T) {
	err := showOutcome(context.Background(), []byte(`{"commandId":"crm 7","name":"A"}`), client.Outcome{},
		fmt.Errorf("publish: %w", context.DeadlineExceeded), time.Millisecond, io.Discard)
	var ee *exit.Error
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.Code)
	assert.Equal(t, "JetStream did not acknowledge the publish within --timeout 1ms: the command may or may not be stored; "+
		"publishing it again is safe with --command-id 'crm 7'", ee.Err.Error())
}
