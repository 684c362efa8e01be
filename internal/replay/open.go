package replay

import "github.com/contactrelay/contactrelay/internal/failstore"

// FromOpen returns open failures as failures to replay: each the newest
// failure of its command, superseded by nothing (the store holds no
// other).
func FromOpen(open []*failstore.Failure) []*Failure {
	out := make([]*Failure, len(open))
	for i, f := range open {
		out[i] = &Failure{Event: f.Event, Data: f.Data, Seq: f.Seq}
	}
	return out
}
