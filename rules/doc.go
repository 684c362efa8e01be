// Package rules defines, once, the rules a contact.create command must
// meet: the contract's field rules (Validator: name, email, mobile, tagId,
// companyName, metadata, commandId, with the printable and visible text
// rules), the commandId rules (CommandIDFromHeader, UsableCommandID,
// DerivedID), and each provider's own rules (Provider, CheckInstantPay,
// CheckPIK) with the list of provider names this version knows
// (Providers), and the normalisation applied before them (Normalize: a
// mobile's spaces, dashes and dots, a provider's case). The service
// applies them to every command it receives, and
// the public client applies the same rules before it publishes; docs/CONTRACT.md
// states them in prose.
//
// A new provider is its adapter under internal/clients/, its rules here,
// and one line in the providers table.
//
// # Compatibility
//
// The package follows semantic versioning with the module: no exported name
// is removed or renamed within a major version. The rules themselves follow
// the contract: a rule may be added or tightened when the contract is, and
// a new provider may appear in Providers.
package rules
