// Package console is contactrelay's web console for failures and replay:
// server-rendered pages over the open-failure store (failstore) that list,
// filter and group the open failures, show one whole, and replay, repair
// and discard them through the same code as 'consumer replay' and
// 'consumer failures discard' (package replay, package failstore).
//
// A Server keeps a small index of the open failures (package openfailures:
// 32 bytes a failure and its commandId; reasons, providers and messages
// stored once), read once when it starts and then kept in step with what
// changes (the store's new entries, the contact.created events, its own
// discards), checked every Config.Refresh and after every action; it
// answers every listing from it. Only the page of one failure and the
// actions read whole entries. Its figures of the event stream and of the
// durable consumer are reloaded in the background too.
//
// Security: every page but the sign-in page needs a signed session cookie,
// given for CONSOLE_USER and CONSOLE_PASSWORD, unless the console runs
// without authentication (Config.NoAuth, allowed on a loopback address
// only). Every state change is a POST carrying the session's CSRF token,
// checked as well against the browser's Sec-Fetch-Site and Origin headers;
// no GET changes state. Pages are sent with a Content-Security-Policy that
// allows no inline script or style. html/template escapes whatever a
// command holds. Email addresses and mobile numbers are masked on every
// page; unmasking one command is a POST, and logged.
//
// Every action (replay, repair, discard, unmask) is logged with who did it,
// what it chose and how many, and what came of it, and is listed on the
// activity page.
package console
