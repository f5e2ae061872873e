#!/bin/sh
# Regenerates the Go code for core/api/v1/berth.proto. Needs protoc and the
# protoc-gen-go / protoc-gen-go-grpc plugins (go install'ed into GOPATH/bin).
set -eu
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH"
export PATH
protoc --proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	v1/berth.proto
