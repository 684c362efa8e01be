// Package openfailures keeps the console's table of the open failures in
// memory: an interned index of 32 bytes a failure (index.go: its
// sequence, time, attempts, flags and the ids of its reason, provider and
// message; its commandId packed in one arena), read once from the
// open-failure store (failstore) and then followed (follow.go: the
// store's new entries, the contact.created events of CONTACT_EVENTS, and
// the discards its user tells it of), so that every listing, filter,
// group and count is answered without reading the store.
//
// A Follower keeps the current View; a View answers Queries. It is not
// failstore's exact-value index, which finds failures by a field's value
// in the store itself.
package openfailures
