// Package sandbox holds in-memory stand-ins of the two payment providers'
// APIs, InstantPay's Contact Book and PIK Global Account. The service's dev
// mode (consumer dev, where no real contact may be created) serves them in
// place of the real providers, and integration tests serve them with
// httptest.NewServer. It is the tests' one provider stand-in: the answers
// the sandboxes never give, tests script with a Script. Nothing leaves the
// process, and every answer of a sandbox says so: messages mention
// SANDBOX, bodies carry "environment": "SANDBOX" and every reply has the
// header X-Sandbox: true.
//
// Both sandboxes are http.Handlers, safe for concurrent use, with no state
// outside their own values.
//
// # InstantPay
//
// NewInstantPay answers
//
//	POST /contacts/profile   create a contact (statuscode TXN, data._id)
//	GET  /contacts/profile   list the stored contacts
//
// The list's paging is InstantPayConfig.Paging: by default the whole list as
// the data array, or, when the request has page or limit, one page in the
// mongoose-paginate shape (data.docs with totalDocs, limit, page,
// totalPages, hasNextPage, nextPage), PageSize (20) a page unless limit
// says otherwise, limit capped at MaxPageSize (100). PagingAlways pages
// every request; PagingNever never does. Filters such as email= are
// ignored. NewestFirst reverses the order, oldest first by default.
//
// Both check the X-Ipay-Client-Id, X-Ipay-Client-Secret and X-Ipay-Auth-Code
// headers. Like the real API, errors come as HTTP 200 with a failure
// statuscode in the body: IAC for bad credentials, RPI for missing or invalid
// fields. A create is never refused as a duplicate (the real API has no
// idempotency key): every one is stored, so that tests can count duplicates.
//
// # PIK
//
// NewPIK answers
//
//	POST /auth/token            {"appId","appSecret"} → a JWT in data.token
//	POST /api/v1/contact/create create a contact (needs a Bearer token)
//	GET  /api/v1/contact/list   ?pageNum=&pageSize=&keyword= (needs a Bearer token)
//
// The list answers data.list with total, pageNum, pageSize, pages and
// hasNextPage; PIKConfig.MaxPageSize caps pageSize, and NewestFirst
// reverses the order.
//
// Tokens are HS256 JWTs signed with a key of the sandbox's own and expire
// after PIKConfig.TokenTTL; a missing, forged or expired token gets HTTP 401.
// Other errors come as HTTP 200 with the failure in the body's code: 400 for
// missing or invalid fields, 409 for a contactCode that already exists.
//
// # Faults
//
// Inject queues a Fault for the next create calls: an error reply, extra
// latency, a request held until the client gives up (Hang), a contact stored
// and then no answer (CreateThenHang, the ambiguous outcome) or a connection
// closed without an answer (Drop). SetDown makes every provider request
// answer 503 until it is called again with false. CreateCalls, Contacts,
// Duplicates and (for PIK) TokenRequests report what the sandbox saw.
//
// # Scripted answers
//
// The client packages' tests need answers no sandbox gives: malformed
// bodies, unknown codes, replies of odd shapes, tokens numbered by the
// test. A Script records every request (Requests) and answers with the
// handler the test wrote; Reply and WriteReply answer a fixed status and
// body, Hang answers nothing until the client gives up, HangUp closes the
// connection, and ClosedURL is an address that refuses connections.
//
// # Admin endpoints
//
// Both handlers also answer, on the same address, endpoints for driving them
// by hand in dev mode. They need no credentials and are exempt from latency,
// faults and SetDown:
//
//	GET    /_sandbox/faults    the queued faults, with the times each has left
//	POST   /_sandbox/faults    append the Fault in the body, as Inject does
//	DELETE /_sandbox/faults    clear all faults, as ClearFaults does
//	GET    /_sandbox/down      whether the sandbox is down
//	POST   /_sandbox/down      go down, as SetDown(true) does
//	DELETE /_sandbox/down      come back up, as SetDown(false) does
//	GET    /_sandbox/contacts  the stored contacts, with createCalls, count,
//	                           duplicates (and tokenRequests for PIK)
//
// A Fault in JSON has the fields times, email, status, code, message,
// retryAfter, hang, createThenHang, drop and latency; durations are Go
// duration strings such as "1.5s" (a bare number counts seconds), and code
// may be a string or a number. Unknown fields are refused, so that a typo does not go unnoticed.
// For example, to make the next two creates answer 503 with Retry-After:
//
//	curl -X POST http://127.0.0.1:PORT/_sandbox/faults \
//	  -d '{"times": 2, "status": 503, "retryAfter": "1s"}'
package sandbox
