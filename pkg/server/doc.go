// Package server is dg's HTTP listener: the API, health and readiness
// probes, and (later) the operator console. It wires the domain packages
// together; it holds no state that is the only copy of anything.
package server
