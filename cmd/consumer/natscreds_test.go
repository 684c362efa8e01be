package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
)

// TestNATSWithCredsFile runs setup against a server in operator mode, which
// admits only users with a credentials file (a user JWT and its seed).
func TestNATSWithCredsFile(t *testing.T) {
	op, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opPub, _ := op.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(op)
	require.NoError(t, err)
	opClaims, err = jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)

	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		require.NoError(t, err)
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := ac.Encode(op)
		require.NoError(t, err)
		return kp, pub, token
	}
	_, sysPub, sysJWT := account("SYS", false)
	appKP, appPub, appJWT := account("APP", true)

	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = "contactrelay"
	userJWT, err := uc.Encode(appKP)
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	require.NoError(t, err)
	credsPath := filepath.Join(t.TempDir(), "contactrelay.creds")
	require.NoError(t, os.WriteFile(credsPath, creds, 0o600))

	srv := natstest.Start(t, func(o *server.Options) {
		resolver := &server.MemAccResolver{}
		require.NoError(t, resolver.Store(sysPub, sysJWT))
		require.NoError(t, resolver.Store(appPub, appJWT))
		o.TrustedOperators = []*jwt.OperatorClaims{opClaims}
		o.AccountResolver = resolver
		o.SystemAccount = sysPub
	})
	env := map[string]string{"NATS_URL": srv.ClientURL(), "NATS_CREDS": credsPath}
	getenv := func(k string) string { return env[k] }
	require.NoError(t, run(t.Context(), []string{"setup"}, getenv, nil, io.Discard, io.Discard),
		"setup connects with the credentials file")

	delete(env, "NATS_CREDS")
	err = run(t.Context(), []string{"setup"}, getenv, nil, io.Discard, io.Discard)
	require.Error(t, err, "without credentials the server refuses")
	assert.NotContains(t, err.Error(), string(seed), "the seed never shows in an error")
}
