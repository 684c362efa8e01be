package pause

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/rules"
)

// Change is what 'consumer pause' and 'consumer resume' ask of a Store:
// pause (or resume) Provider, with Reason, by By.
type Change struct {
	Resume   bool
	Provider string
	Reason   string
	By       string
}

// Apply makes c, and says what it did on w. A provider this build does
// not know is a usage error (exit 2); resuming a provider that is not
// paused says so and succeeds.
func (st *Store) Apply(ctx context.Context, c Change, w io.Writer) error {
	if !slices.Contains(rules.Providers(), c.Provider) {
		return &exit.Error{Code: 2, Err: fmt.Errorf("unknown provider %q (known: %v)", c.Provider, rules.Providers())}
	}
	if c.Resume {
		err := st.Resume(ctx, c.Provider, c.By)
		if errors.Is(err, ErrNotPaused) {
			fmt.Fprintf(w, "%s was not paused\n", c.Provider)
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s resumed: every instance calls it again as it sees the change (within a second)\n", c.Provider)
		return nil
	}
	s, err := st.Pause(ctx, c.Provider, c.Reason, c.By)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s paused since %s: every instance holds its commands (none exhausted) until 'consumer resume %s'\n",
		c.Provider, s.Since.Format(time.RFC3339), c.Provider)
	return nil
}
