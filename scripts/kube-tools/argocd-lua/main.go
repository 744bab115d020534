// Command argocd-lua-health runs an Argo CD resource health script (health.lua) against one
// Kubernetes object in gopher-lua, the interpreter Argo CD embeds, pinned by this folder's go.mod
// and go.sum at the version Argo CD pins.
//
// Reproduces Argo CD's util/lua ExecuteHealthLua: libs (package, base, table; all with --open-libs), require("os") = time+date only, 1 s timeout, obj as tables (arrays 1-based, every number a Lua float), result via gopher-json, invalid status -> Unknown, nil/{} -> empty status, runtime errors without stack trace.
//
// Usage: argocd-lua-health [--open-libs] SCRIPT.lua < object.json
//
// --open-libs is Argo CD's useOpenLibs: off for a customization in argocd-cm unless
// resource.customizations.useOpenLibs.<group_kind> is true; on for the scripts built into Argo CD.
//
// Output: one JSON line {"status":"Healthy","message":"..."} on stdout: what Argo CD would show.
// An empty status ("") is what Argo CD returns, without an error, for a script that returns nil,
// an empty table, or a table whose fields have the wrong JSON types. Anything the script prints
// goes to stderr, so stdout holds only the result.
//
// Exit status: 1 when Argo CD would fail the health check (syntax or runtime error, timeout, a
// return value that is not a table, a table gopher-json cannot encode); stderr then ends with the
// error text Argo CD would show as the health message. 2 for a usage error or bad input.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
)

// Argo CD's limit on one script's run.
const scriptTimeout = time.Second

// The status codes Argo CD accepts from a health script (gitops-engine's HealthStatusCode).
var validStatus = map[string]bool{
	"Healthy":     true,
	"Progressing": true,
	"Degraded":    true,
	"Suspended":   true,
	"Missing":     true,
	"Unknown":     true,
}

const invalidStatusMessage = "Lua returned an invalid health status"

// healthStatus has the JSON shape of gitops-engine's HealthStatus, the type Argo CD unmarshals
// the script's table into.
type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

type output struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func usageError(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-lua-health: "+format+"\n", args...)
	os.Exit(2)
}

// toLua turns a value of an unstructured object into the Lua value Argo CD gives the script.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case json.Number:
		// Argo CD passes a json.Number on as its text.
		return lua.LString(string(x))
	case int:
		return lua.LNumber(float64(x))
	case int32:
		return lua.LNumber(float64(x))
	case int64:
		return lua.LNumber(float64(x))
	case float64:
		return lua.LNumber(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(toLua(l, e)) // Append: the first element is at index 1
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetH(lua.LString(k), toLua(l, e))
		}
		return t
	default:
		// Any other Go type becomes nil, as in Argo CD.
		return lua.LNil
	}
}

// safeOsModule is what `require("os")` returns in Argo CD's VM: the os library's time and date,
// nothing that exits, runs commands, touches files or the environment. Both are gopher-lua's own.
func safeOsModule() map[string]lua.LGFunction {
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	scratch.Push(scratch.NewFunction(lua.OpenOs))
	scratch.Call(0, 1)
	full := scratch.Get(-1).(*lua.LTable)
	mod := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		mod[name] = full.RawGetString(name).(*lua.LFunction).GFunction
	}
	return mod
}

// newVM makes the Lua state the way Argo CD does for a health script.
func newVM(openLibs bool) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	// Argo CD (re)opens package, base and table whatever useOpenLibs says. Reopening package
	// replaces package.loaded with an empty table, so with --open-libs the globals (string, math,
	// os, io...) stay but `require` of them no longer finds them loaded. Argo CD then "opens" its
	// safe os under the table library's name, which is already loaded, so that adds nothing: no
	// global os unless --open-libs.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	osFuncs := safeOsModule()
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), osFuncs))
		return 1
	})
	return l
}

// healthOf is Argo CD's ExecuteHealthLua: the status and message Argo CD shows, or the error it
// reports.
func healthOf(obj *unstructured.Unstructured, script string, openLibs bool) (healthStatus, error) {
	l := newVM(openLibs)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		// Argo CD drops the Lua stack trace from runtime errors (it goes back to users); syntax
		// errors keep whatever gopher-lua put in them.
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
			err = apiErr
		}
		return healthStatus{}, err
	}

	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTTable:
		encoded, err := luajson.Encode(ret)
		if err != nil {
			return healthStatus{}, err
		}
		var hs healthStatus
		if err := json.Unmarshal(encoded, &hs); err != nil {
			// An empty table encodes as [] and Argo CD takes that as "no health". Its test for that
			// case matches any JSON type error, so a field of the wrong type yields "no health" too.
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				return healthStatus{}, nil
			}
			return healthStatus{}, err
		}
		if !validStatus[hs.Status] {
			return healthStatus{Status: "Unknown", Message: invalidStatusMessage}, nil
		}
		return hs, nil
	case lua.LTNil:
		return healthStatus{}, nil
	default:
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
}

func main() {
	openLibs := false
	var scriptPath string
	for _, a := range os.Args[1:] {
		switch {
		case a == "--open-libs":
			openLibs = true
		case scriptPath == "" && (len(a) == 0 || a[0] != '-'):
			scriptPath = a
		default:
			usageError("unexpected argument %q; usage: argocd-lua-health [--open-libs] SCRIPT.lua < object.json", a)
		}
	}
	if scriptPath == "" {
		usageError("usage: argocd-lua-health [--open-libs] SCRIPT.lua < object.json")
	}
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		usageError("reading the health script: %v", err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		usageError("reading stdin: %v", err)
	}
	// Decoded as client-go decodes what an informer hands Argo CD: integers as int64.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(input); err != nil {
		usageError("stdin is not one Kubernetes object as JSON: %v", err)
	}

	// The script's print() writes to os.Stdout: send that to stderr while it runs.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	hs, err := healthOf(obj, string(script), openLibs)
	os.Stdout = stdout
	if err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
	line, err := json.Marshal(output(hs))
	if err != nil {
		usageError("encoding the result: %v", err)
	}
	fmt.Fprintln(stdout, string(line))
}
