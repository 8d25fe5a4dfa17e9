// argocd-health runs an Argo CD health check script the way Argo CD v3.5.7 runs one (util/lua/lua.go,
// ExecuteHealthLua; v3.6.1 does the same and only caches the compiled script): gopher-lua with only the package,
// base and table libraries opened (SkipOpenLibs, as when useOpenLibs is not set; Argo CD adds a reduced os library,
// which wharf's script does not use), the live object decoded into Lua tables as the global `obj` (integers as
// Kubernetes' unstructured decoding leaves them, int64 -> LNumber), a 1 s time limit, and the returned table
// encoded with gopher-json and read as {status, message}; a status outside Argo CD's health codes becomes Unknown,
// "Lua returned an invalid health status".
//
// Usage: argocd-health SCRIPT < object.json   (or a JSON array of objects: one result per line)
// Prints {"status": ..., "message": ...} as JSON per object; a Lua error exits 1 with the error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

var validCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// decodeValue is Argo CD's (util/lua/lua.go), fed what unstructured decoding yields: int64 for integers.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// unstructured converts JSON numbers as Kubernetes' unstructured decoding does: integers to int64.
func unstructured(value any) any {
	switch v := value.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = unstructured(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = unstructured(v[k])
		}
	}
	return value
}

func executeHealthLua(obj map[string]any, script string) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	returnValue := l.Get(-1)
	if returnValue.Type() == lua.LTNil {
		return &healthStatus{}, nil
	}
	if returnValue.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type())
	}
	encoded, err := luajson.Encode(returnValue)
	if err != nil {
		return nil, err
	}
	hs := &healthStatus{}
	if err := json.Unmarshal(encoded, hs); err != nil {
		return nil, err
	}
	if !validCodes[hs.Status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	input, err := os.ReadFile("/dev/stdin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	decoder := json.NewDecoder(bytes.NewReader(input))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		fmt.Fprintln(os.Stderr, "reading the object:", err)
		os.Exit(2)
	}
	objects, many := value.([]any)
	if !many {
		objects = []any{value}
	}
	for _, object := range objects {
		obj, ok := unstructured(object).(map[string]any)
		if !ok {
			fmt.Fprintln(os.Stderr, "an object must be a JSON object")
			os.Exit(2)
		}
		hs, err := executeHealthLua(obj, string(script))
		if err != nil {
			fmt.Fprintln(os.Stderr, "lua:", err)
			os.Exit(1)
		}
		out, _ := json.Marshal(hs)
		fmt.Println(string(out))
	}
}
