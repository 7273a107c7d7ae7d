"""What several test modules (and the benchmarks) share: the one `warmzoo serve` launcher, the app
served in a thread for client tests, an interpreter that sees only torch and safetensors, a
settable clock, request payloads, tiny specs and weights, store snapshots, thread races.
Test modules import from here, never from one another."""
