// Package record is the idempotency record of contactrelay: one record per
// commandId in the JetStream key-value bucket Bucket, which every service
// instance consults before it decides a command, and which makes "at most
// one create call per commandId" and "one outcome per generation" hold
// across crashes, redeliveries and instances. docs/RECORDS.md describes the
// stored form.
//
// The package holds the record's type (Record), its versioned codec
// (Encode, Decode, Version), its key (Key), the content fingerprint that
// tells one request from another (ContentFingerprint, Fingerprint), the
// rules by which a record answers a command sent again (ResentOutcome,
// NewestOutcome, NewestEvent and the Record methods they use), and Reader,
// the read-only access to the bucket. The service writes records (its
// writing store is internal: the compare-and-set protocol of a decision is
// the service's alone); the public client reads them through this package,
// so that what it reads is what the service answers.
//
// # Compatibility
//
// The stored form is versioned (Version): a reader refuses a newer version
// (ErrVersion) rather than misread it, and reads every older one. The
// package follows semantic versioning with the module: within a major
// version no exported name is removed or renamed, and the answer rules
// keep their meaning.
package record
