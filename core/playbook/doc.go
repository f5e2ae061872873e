// Package playbook owns the playbook language: it reads an HCL playbook
// file, resolves its variables and locals, decodes it through the schema in
// hcl-schemas, checks its meaning (names, references, dependency cycles,
// sizes, durations, signals, CAN grants and their ID filters) and returns
// the plain-data model in model.go. A CAN grant is decoded into the
// broker's own broker.Grant; CheckBoard checks grants against a board file.
//
// Every problem is reported as an hcl.Diagnostic with the file, line and
// column it concerns and a sentence on how to fix it, and all problems are
// reported at once. The package also formats playbooks (Format), checks
// that their images are present (CheckImages), orders a stack's start
// (Stack.StartOrder) and prints diagnostics with source snippets
// (WriteDiagnostics).
package playbook
