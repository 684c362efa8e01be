package status

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contactrelay/contactrelay/internal/pause"
)

// Age says how long ago t was, in seconds, minutes or hours; "—" for none.
func Age(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%dh", int(d.Hours()))
}

// WriteJSON writes s as indented JSON.
func WriteJSON(w io.Writer, s Snapshot) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(s)
}

// WriteText writes s for a person: what waits, what each instance has in
// flight per provider (with up to ids commandIds), its circuits, and the
// pauses.
func WriteText(w io.Writer, s Snapshot, ids int) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	oldest := "none"
	if !s.OldestWaiting.IsZero() {
		oldest = "stored " + Age(s.At, s.OldestWaiting) + " ago"
	}
	fmt.Fprintf(tw, "waiting\t%d (oldest not settled: %s)\n", s.Waiting, oldest)
	fmt.Fprintf(tw, "delivered, not settled\t%d\n", s.AckPending)
	fmt.Fprintf(tw, "in flight\t%s\n", counts(s.InFlight))
	var created, failed, lastC, lastF uint64
	for i, m := range s.Minutes {
		created, failed = created+m.Created, failed+m.Failed
		if i == len(s.Minutes)-2 { // the last whole minute
			lastC, lastF = m.Created, m.Failed
		}
	}
	fmt.Fprintf(tw, "outcomes, last hour\t%d created, %d failed (last whole minute: %d created, %d failed; --json: per minute)\n", created, failed, lastC, lastF)
	fmt.Fprintf(tw, "pauses\t%s\n", pauses(s.At, s.Pauses))
	fmt.Fprintf(tw, "instances\t%d answered\n", len(s.Instances))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, in := range s.Instances {
		fmt.Fprintf(w, "\n%s\n", in.ID)
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROVIDER\tCIRCUIT\tSINCE\tIN FLIGHT\tCOMMANDS (oldest first)")
		for _, p := range providersOf(in) {
			c := in.Circuits[p]
			var list []string
			for _, cmd := range in.Commands[p][:min(len(in.Commands[p]), ids)] {
				list = append(list, fmt.Sprintf("%s (%s)", cmd.CommandID, Age(s.At, cmd.Since)))
			}
			if n := in.InFlight[p] - len(list); n > 0 {
				list = append(list, fmt.Sprintf("and %d more", n))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s ago\t%d\t%s\n", p, c.State, Age(s.At, c.Since), in.InFlight[p], strings.Join(list, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "\nnot read: %s\n", p)
	}
	return nil
}

func providersOf(in Instance) []string {
	var out []string
	for p := range in.Circuits {
		out = append(out, p)
	}
	for p := range in.InFlight {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for p, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", p, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func pauses(now time.Time, ps []pause.State) string {
	if len(ps) == 0 {
		return "none"
	}
	var parts []string
	for _, p := range ps {
		s := fmt.Sprintf("%s paused %s ago", p.Provider, Age(now, p.Since))
		if p.By != "" {
			s += " by " + p.By
		}
		if p.Reason != "" {
			s += ": " + p.Reason
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
