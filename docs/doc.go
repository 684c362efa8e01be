// Package docs holds the repository's prose documentation (CONTRACT.md,
// RECORDS.md, PERFORMANCE.md) and no code; its test checks that every
// relative link in the repository's Markdown files resolves to a file
// inside the repository.
package docs
