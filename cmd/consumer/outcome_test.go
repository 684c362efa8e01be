package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

// TestOneOutcomePerGenerationAfterAReplay re-publishes original commands
// after a replay created their contacts, as a new message each (another
// Nats-Msg-Id, so that the command stream stores them): every generation
// keeps exactly one terminal event id, and the re-published originals are
// answered with the replay's contact.created, the same event. Content no
// generation had is a conflict, under an id of its own.
func TestOneOutcomePerGenerationAfterAReplay(t *testing.T) {
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "1"
	e.vars["CIRCUIT_FAILURES"] = "1000"
	e.ipay.SetDown(true)
	e.start(t)
	cmds := ids("gen", 5)
	for _, id := range cmds {
		e.publish(t, command(id), "Nats-Msg-Id", id)
	}
	failed := failedIDs(e.awaitEvents(t, len(cmds), 20*time.Second))
	require.Len(t, failed, len(cmds))

	e.ipay.SetDown(false)
	_, _, err := e.cli(t, "replay")
	require.NoError(t, err)
	evs := e.awaitEvents(t, 2*len(cmds), 20*time.Second)
	created := map[string]contact.Event{}
	for _, ev := range evs {
		if ev.Type == contact.SubjectCreated {
			created[ev.Subject] = ev
		}
	}
	require.Len(t, created, len(cmds), "the replay created every contact")
	calls := e.ipay.CreateCalls()

	seen := e.watchPublishes(t)
	for _, id := range cmds {
		e.publish(t, command(id), "Nats-Msg-Id", "again:"+id)
	}
	other := fmt.Sprintf(`{"commandId":%q,"name":"Someone Else","email":"else@example.com","mobile":"+919876543211","tagId":%q}`, cmds[0], tagID)
	e.publish(t, other, "Nats-Msg-Id", "other:"+cmds[0])
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Len(c, seen(), len(cmds)+1, "an answer to every command sent again")
	}, 20*time.Second, 20*time.Millisecond)

	var conflicts int
	for _, ev := range seen() {
		if ev.Type == contact.SubjectFailed && data[contact.Failed](t, ev).Reason == contact.ReasonConflict {
			conflicts++
			assert.Equal(t, cmds[0], ev.Subject)
			assert.NotContains(t, []string{failed[ev.Subject], created[ev.Subject].ID}, ev.ID, "a conflict has an id of its own")
			continue
		}
		want := created[ev.Subject]
		assert.Equal(t, want.ID, ev.ID, "%s: answered with the replay's contact.created, the same event", ev.Subject)
		assert.Equal(t, contact.SubjectCreated, ev.Type, ev.Subject)
		assert.Equal(t, failed[ev.Subject], data[contact.Created](t, ev).ReplayOf, "of the replay's generation")
	}
	assert.Equal(t, 1, conflicts, "content no generation had is a conflict")
	assert.Equal(t, calls, e.ipay.CreateCalls(), "no create call for a command sent again")

	// In the event stream, each generation has exactly one terminal event
	// id: the original's failure and the replay's contact.created.
	idsByGeneration := map[string]map[string]bool{}
	for _, ev := range e.events(t) {
		if ev.Type == contact.SubjectFailed && data[contact.Failed](t, ev).Reason == contact.ReasonConflict {
			continue
		}
		gen := ev.Subject + "/"
		if ev.Type == contact.SubjectCreated {
			gen += data[contact.Created](t, ev).ReplayOf
		} else {
			gen += data[contact.Failed](t, ev).ReplayOf
		}
		if idsByGeneration[gen] == nil {
			idsByGeneration[gen] = map[string]bool{}
		}
		idsByGeneration[gen][ev.ID] = true
	}
	assert.Len(t, idsByGeneration, 2*len(cmds), "two generations per command")
	for gen, ids := range idsByGeneration {
		assert.Len(t, ids, 1, "generation %s has exactly one terminal event id", gen)
	}
}
