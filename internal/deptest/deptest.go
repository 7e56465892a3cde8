// Package deptest keeps whipgate's dependencies pointing one way: its test
// checks every package's dependencies, direct or not, against the rules of
// the architecture, in one table (tailscale's deptest does the same per
// package). It has no API of its own.
package deptest
