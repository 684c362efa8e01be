package main

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailuresCSV(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.start(t)
	e.publish(t, `{"commandId":"csv-1","name":"Chen Sharma","email":"chen@exmaple","mobile":"+919876510011","tagId":"`+tagID+`","metadata":{"CRM Id":"CRM-10395"}}`)
	e.publish(t, `{"commandId":"csv-2","provider":"pik","name":"=1+1","email":"zoe@example.com","mobile":"12","tagId":"vip","pik":{"firstName":"Zoë"}}`)
	e.awaitEvents(t, 2, 10*time.Second)

	stdout, stderr, err := e.cli(t, "failures", "--csv")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	assert.Equal(t, []string{"failureId", "commandId", "reason", "message", "fields", "provider", "name", "email", "mobile", "tagId", "companyName", "metadata.CRM Id", "pik"}, recs[0])
	byID := map[string][]string{}
	for _, rec := range recs[1:] {
		byID[rec[1]] = rec
	}
	assert.Equal(t, []string{"invalid", "email", "", "Chen Sharma", "chen@exmaple", "'+919876510011", "CRM-10395", ""},
		[]string{byID["csv-1"][2], byID["csv-1"][4], byID["csv-1"][5], byID["csv-1"][6], byID["csv-1"][7], byID["csv-1"][8], byID["csv-1"][11], byID["csv-1"][12]}, "unmasked, guarded")
	assert.Equal(t, []string{"mobile", "pik", "'=1+1", `{"firstName":"Zoë"}`}, []string{byID["csv-2"][4], byID["csv-2"][5], byID["csv-2"][6], byID["csv-2"][12]})
	assert.Len(t, byID["csv-1"][0], 36, "the failure's event id")
	assert.Contains(t, stderr, "exported open failures as CSV, unmasked", "the export is logged")
	assert.Contains(t, stderr, "failures=2")

	_, _, err = e.cli(t, "failures", "--csv", "--json")
	assert.Equal(t, 2, exitCode(err), "--csv and --json are a usage error")
}
