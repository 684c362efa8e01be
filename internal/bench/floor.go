package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// Floor is the least a correct consumer does per command, with the same
// concurrency as the service: receive, decode, one HTTP POST to the
// provider, publish one event and wait for the stream's ack, then ack the
// command. No validation, no idempotency record, no retries. It runs until
// ctx is done.
//
// With records, it also does the two record writes that the contract's
// guarantees take, and nothing else: a compare-and-set on the command's
// key in the record bucket before the POST (only one create call per
// commandId, whatever the instances and deliveries), and the outcome, with
// the event in it, written over that revision before the event is
// published (a redelivery repeats it). It measures what the guarantees
// cost on a given server, apart from the service's own machinery.
func Floor(ctx context.Context, natsURL, providerURL string, concurrency int, records bool) error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, provision.CommandStream, provision.Durable)
	if err != nil {
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(concurrency))
	if err != nil {
		return err
	}
	var kv jetstream.KeyValue
	if records {
		if kv, err = js.KeyValue(ctx, provision.RecordBucket); err != nil {
			return err
		}
	}
	go func() { <-ctx.Done(); iter.Stop() }()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		slots <- struct{}{}
		msg, err := iter.Next()
		if err != nil {
			<-slots
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if err := floorOne(ctx, js, kv, hc, providerURL, msg); err != nil {
				_ = msg.Nak()
			}
		}()
	}
}

func floorOne(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, hc *http.Client, providerURL string, msg jetstream.Msg) error {
	var cmd struct {
		CommandID string            `json:"commandId"`
		Name      string            `json:"name"`
		Email     string            `json:"email"`
		Mobile    string            `json:"mobile"`
		TagID     string            `json:"tagId"`
		Metadata  map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(msg.Data(), &cmd); err != nil {
		return msg.Term()
	}
	var (
		key = "c." + base64.RawURLEncoding.EncodeToString([]byte(cmd.CommandID))
		rev uint64
		err error
	)
	// The records are built by hand, as small as contactrelay's: the floor
	// counts the writes, not their encoding.
	quotedID, _ := json.Marshal(cmd.CommandID)
	if kv != nil {
		claim := append(append([]byte(`{"commandId":`), quotedID...), `,"unsettled":true,"generations":{"":{"attempts":1}}}`...)
		if rev, err = kv.Create(ctx, key, claim); err != nil {
			return err
		}
	}
	body, _ := json.Marshal(map[string]any{
		"name": cmd.Name, "email": cmd.Email, "mobile": cmd.Mobile,
		"tagDetails": []map[string]string{{"tagId": cmd.TagID}},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, providerURL+"/contacts/profile", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Ipay-Auth-Code", "1")
	req.Header.Set("X-Ipay-Client-Id", ClientID)
	req.Header.Set("X-Ipay-Client-Secret", ClientSecret)
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	var reply struct {
		StatusCode string `json:"statuscode"`
		Data       struct {
			ID string `json:"_id"`
		} `json:"data"`
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&reply)
	res.Body.Close()
	if err != nil || reply.StatusCode != "TXN" {
		return fmt.Errorf("provider: %v %s", err, reply.StatusCode)
	}
	id := contact.EventID(cmd.CommandID, "", contact.SubjectCreated)
	ev, _ := json.Marshal(contact.Event{
		SpecVersion: "1.0", ID: id, Source: "floor", Type: contact.SubjectCreated, Subject: cmd.CommandID,
		Time: time.Now().UTC(), DataContentType: "application/json",
		Data: mustJSON(map[string]any{"commandId": cmd.CommandID, "contactId": reply.Data.ID, "metadata": cmd.Metadata}),
	})
	if kv != nil {
		quotedContact, _ := json.Marshal(reply.Data.ID)
		rec := make([]byte, 0, 160+len(ev))
		rec = append(append(rec, `{"commandId":`...), quotedID...)
		rec = append(append(rec, `,"contact":{"provider":"instantpay","id":`...), quotedContact...)
		rec = append(append(rec, `},"generations":{"":{"attempts":1,"outcomeLine":1}}}`+"\n"...), ev...)
		if _, err := kv.Update(ctx, key, rec, rev); err != nil {
			return err
		}
	}
	out := nats.NewMsg(contact.SubjectCreated)
	out.Data = ev
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID(id)); err != nil {
		return err
	}
	return msg.Ack()
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
