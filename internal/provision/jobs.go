package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// JobBucket holds the bulk replay and discard jobs (package jobs): a key
// per job, its filter, cursor, counts, state and owner's lease, so that a
// job survives the process that runs it and every console replica shows
// its progress.
const JobBucket = "CONTACT_JOBS"

// JobsConfig is the job bucket's configuration: one value per key (a
// job's newest state), no age limit (a finished job's entry is pruned by
// package jobs, a week after it finished).
func JobsConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      JobBucket,
		Description: "contactrelay: bulk replay and discard jobs (filter, cursor, counts, state, owner's lease), by job id",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// EnsureJobs creates the job bucket if it does not exist, and says so
// through note; an existing one is left as it is.
func EnsureJobs(ctx context.Context, js jetstream.JetStream, replicas int, note func(string)) error {
	_, err := js.KeyValue(ctx, JobBucket)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("look up bucket %s: %w", JobBucket, err)
	}
	_, err = js.CreateKeyValue(ctx, JobsConfig(replicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		return nil // made meanwhile by another
	}
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", JobBucket, err)
	}
	if note != nil {
		note(fmt.Sprintf("%s: created (bulk replay and discard jobs, resumable)", JobBucket))
	}
	return nil
}
