package console

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

var csvField = regexp.MustCompile(`(?s)<textarea name="csv" hidden>(.*?)</textarea>`)

func invalidEmail(i int) (contact.Failed, time.Time) {
	cmd := fmt.Sprintf(`{"commandId":"inv-%d","name":"Person %d","email":"p%d@exmaple","mobile":"+9198765%05d","tagId":"t"}`, i, i, i, i)
	return contact.Failed{CommandID: fmt.Sprintf("inv-%d", i), Provider: "pik", Reason: contact.ReasonInvalid,
		Message: "the command breaks 1 rule: email must be a valid email address", Errors: []contact.FieldError{{Field: "email", Rule: "email"}},
		Command: json.RawMessage(cmd)}, time.Now().Add(-time.Duration(i) * time.Second)
}

func TestRepairFromASpreadsheet(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081"})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	seed(t, js, 2, invalidEmail)
	srv.follow.Load(ctx)
	c := (&fixture{}).client(t)

	_, body := get(t, c, web.URL+"/failures.csv")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	for _, rec := range recs[1:] {
		if rec[1] == "inv-0" {
			rec[7] = "p0@example.com" // email; inv-1 is left as it was
		}
	}
	var edited bytes.Buffer
	require.NoError(t, csv.NewWriter(&edited).WriteAll(recs))

	_, page := get(t, c, web.URL+"/repair-file")
	var upload bytes.Buffer
	mw := multipart.NewWriter(&upload)
	require.NoError(t, mw.WriteField("csrf", csrfOf(t, page)))
	fw, err := mw.CreateFormFile("file", "failures.csv")
	require.NoError(t, err)
	_, err = fw.Write(edited.Bytes())
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, web.URL+"/repair-file", &upload)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.Do(req)
	require.NoError(t, err)
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	resp.Body.Close()
	plan := b.String()
	require.Equal(t, http.StatusOK, resp.StatusCode, plan)
	assert.Contains(t, plan, "email: p0@exmaple → p0@example.com", "the row's diff")
	assert.Contains(t, plan, "<strong>1</strong> repair to send · 0 refused · 1 unchanged · 0 no longer open")
	info, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	assert.Zero(t, info.CachedInfo().State.Msgs, "nothing sent before the confirmation")

	m := csvField.FindStringSubmatch(plan)
	require.NotNil(t, m, "the confirmation carries the file")
	resp, done := post(t, c, web.URL+"/repair-file", map[string][]string{"csrf": {csrfOf(t, plan)}, "confirm": {"1"}, "csv": {html.UnescapeString(m[1])}})
	require.Equal(t, http.StatusOK, resp.StatusCode, done)
	assert.Contains(t, done, "<strong>1</strong> repair sent")
	s, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	msg, err := s.GetMsg(ctx, 1)
	require.NoError(t, err)
	assert.Contains(t, string(msg.Data), `"email":"p0@example.com"`, "the repair, sent")
	assert.NotEmpty(t, msg.Header.Get(contact.HeaderReplayOf), "as a new generation of the failure")
	assert.Equal(t, uint64(1), s.CachedInfo().State.Msgs, "one repair")
	log := srv.activity.latest()
	require.NotEmpty(t, log)
	assert.Equal(t, "repair-file", log[0].Action)
	assert.Equal(t, 1, log[0].Count)
}
