package console

import (
	"context"
	"encoding/csv"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var downloadLink = regexp.MustCompile(`<a href="([^"]+)" id="download-csv"`)

func TestDownloadCSVOfTheFilter(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true})
	seed(t, f.js, 20, exhausted)
	f.srv.follow.Load(context.Background())
	c := f.client(t)

	_, page := get(t, c, f.web.URL+"/failures?provider=pik")
	m := downloadLink.FindStringSubmatch(page)
	require.NotNil(t, m, "the failures page links the download of what its filter selects")
	href := html.UnescapeString(m[1])
	assert.True(t, strings.HasPrefix(href, "/failures.csv?"), href)
	assert.NotContains(t, page, "p10@example.com", "the page itself stays masked")

	resp, body := get(t, c, f.web.URL+href)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3, "a header and the 2 PIK failures")
	assert.Equal(t, []string{"failureId", "commandId", "reason", "message", "fields", "provider", "name", "email", "mobile", "tagId", "companyName", "pik"}, recs[0])
	got := map[string]string{}
	for _, rec := range recs[1:] {
		got[rec[1]] = rec[7]
		assert.Equal(t, "exhausted", rec[2])
		assert.True(t, strings.HasPrefix(rec[8], "'+9198765"), "a mobile starting with + is guarded: %q", rec[8])
	}
	assert.Equal(t, map[string]string{"cmd-000000": "p0@example.com", "cmd-000010": "p10@example.com"}, got, "unmasked, the filter's failures only")

	log := f.srv.activity.latest()
	require.NotEmpty(t, log)
	assert.Equal(t, "download", log[0].Action, "the download is an action of its own")
	assert.Equal(t, 2, log[0].Count, "logged with how many")
	assert.Contains(t, log[0].What, "provider pik")
}
