// Package docscheck holds the test that keeps the repository's citations honest: every docs/
// page, section and device constraint that Go code cites must exist (docs/README.md). It has no
// code of its own.
package docscheck
