// Command kstatus computes the kstatus status of one Kubernetes object, the way Flux (and
// cli-utils' own kapply/status tooling) judges readiness: status.Compute from
// sigs.k8s.io/cli-utils/pkg/kstatus/status, pinned by this folder's go.mod and go.sum.
//
// Usage: kstatus < object.json
//
// Input: one object as JSON on stdin (apiVersion and kind required, as in any object read from
// an API server). It is decoded with unstructured's own JSON decoding, so integers arrive as
// int64 exactly as they do from a client-go informer; kstatus's generation checks depend on that.
//
// Output: one JSON line, {"status":"Current","message":"..."}, where status is a kstatus Status
// (InProgress, Failed, Current, Terminating, NotFound, Unknown). Bad input or an error from
// Compute: a message on stderr and exit status 1.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type output struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 1 {
		fail("takes no arguments; give one Kubernetes object as JSON on stdin")
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(input); err != nil {
		fail("stdin is not one Kubernetes object as JSON: %v", err)
	}
	if obj.IsList() {
		fail("stdin holds a %s (a list); give one object", obj.GetKind())
	}
	res, err := status.Compute(obj)
	if err != nil {
		fail("status.Compute failed for %s %q: %v", obj.GetKind(), obj.GetName(), err)
	}
	line, err := json.Marshal(output{Status: string(res.Status), Message: res.Message})
	if err != nil {
		fail("encoding the result: %v", err)
	}
	fmt.Println(string(line))
}
