package pik_test

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/pik"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     pik.Config
		wantErr string
	}{
		{name: "complete", cfg: pik.Config{BaseURL: "https://pik.example", AppID: "a", AppSecret: "s"}},
		{name: "missing base URL", cfg: pik.Config{AppID: "a", AppSecret: "s"}, wantErr: "base URL"},
		{name: "missing app id", cfg: pik.Config{BaseURL: "https://pik.example", AppSecret: "s"}, wantErr: "app id"},
		{name: "missing app secret", cfg: pik.Config{BaseURL: "https://pik.example", AppID: "a"}, wantErr: "app secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pik.New(tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err, "a complete config should build a client")
				assert.NotNil(t, c, "the client should be returned")
				return
			}
			require.Error(t, err, "an incomplete config should be refused")
			assert.Contains(t, err.Error(), tt.wantErr, "the error should name what is missing")
		})
	}
}

func TestValidate(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", nil)
	tests := []struct {
		name       string
		pik        string
		wantFields []string
	}{
		{name: "no pik fields", pik: ``},
		{
			name: "all fields of the right type",
			pik: `{"contactCode":"C1","contactType":"INDIVIDUAL","businessType":"x","firstName":"Ada","lastName":"L",
				"nickname":"al","countryCode":"GB","nationality":"GB","paymentContactAddress":{"city":"London"},
				"paymentContactAccount":{"iban":"GB00"},"somethingNew":123}`,
		},
		{name: "nulls are accepted", pik: `{"firstName":null,"paymentContactAddress":null}`},
		{name: "address not an object", pik: `{"paymentContactAddress":"London"}`, wantFields: []string{"pik.paymentContactAddress"}},
		{name: "account an array", pik: `{"paymentContactAccount":[1]}`, wantFields: []string{"pik.paymentContactAccount"}},
		{
			name:       "strings that are not",
			pik:        `{"firstName":1,"countryCode":{"a":1},"nationality":true}`,
			wantFields: []string{"pik.countryCode", "pik.firstName", "pik.nationality"},
		},
		{name: "empty contactCode", pik: `{"contactCode":"  "}`, wantFields: []string{"pik.contactCode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := testCommand()
			if tt.pik != "" {
				require.NoError(t, json.Unmarshal([]byte(tt.pik), &cmd.PIK), "test pik fields should decode")
			}
			errs := c.Validate(cmd)
			if len(tt.wantFields) == 0 {
				assert.Nil(t, errs, "the pik fields should be accepted")
				return
			}
			var fields []string
			for _, fe := range errs {
				fields = append(fields, fe.Field)
				assert.NotEmpty(t, fe.Rule, "every error names its rule")
				assert.NotEmpty(t, fe.Message, "every error has a message")
			}
			assert.Equal(t, tt.wantFields, fields, "the broken fields, sorted")
		})
	}
}

func TestContactCode(t *testing.T) {
	withPIK := func(id, raw string) contact.Command {
		cmd := testCommand()
		cmd.CommandID = id
		if raw != "" {
			cmd.PIK = map[string]json.RawMessage{"contactCode": json.RawMessage(raw)}
		}
		return cmd
	}
	derived := regexp.MustCompile(`^CR[0-9A-F]{24}$`)
	tests := []struct {
		name string
		cmd  contact.Command
		want string // "" means derived from the command id
	}{
		{name: "given in pik", cmd: withPIK("cmd-1", `"MY-CODE-7"`), want: "MY-CODE-7"},
		{name: "derived when absent", cmd: withPIK("cmd-1", ``)},
		{name: "derived when not a string", cmd: withPIK("cmd-1", `17`)},
		{name: "derived when empty", cmd: withPIK("cmd-1", `""`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pik.ContactCode(tt.cmd)
			if tt.want != "" {
				assert.Equal(t, tt.want, got, "the given contactCode wins")
				return
			}
			assert.Regexp(t, derived, got, "a derived code is CR and 24 uppercase hex digits")
			assert.Equal(t, got, pik.ContactCode(withPIK(tt.cmd.CommandID, "")), "the derived code depends on the command id alone")
		})
	}
	t.Run("different command ids give different codes", func(t *testing.T) {
		assert.NotEqual(t, pik.ContactCode(withPIK("cmd-1", "")), pik.ContactCode(withPIK("cmd-2", "")), "codes of two commands")
	})
	t.Run("known value", func(t *testing.T) {
		// sha256("cmd-1") = f41e12c4bef4365ac2e54792 4d419fad…
		assert.Equal(t, "CRF41E12C4BEF4365AC2E54792", pik.ContactCode(withPIK("cmd-1", "")), "the code of cmd-1 must never change")
	})
}
