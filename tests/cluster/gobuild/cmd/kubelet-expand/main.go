// kubelet-expand: what the kubelet makes of containers' `$(VAR)` references, for the tests (tests only).
//
// It reads one JSON object on stdin:
//
//	{"containers": [<a core/v1 Container>, ...], "resolved": {"NAME": "value"}, "serviceEnv": {"NAME": "value"}}
//
// `resolved` holds what each `valueFrom` variable resolves to (the kubelet reads the downward API or a Secret; the
// test chooses the values), `serviceEnv` the service variables (KUBERNETES_SERVICE_HOST, ...; optional). It
// prints each container as it starts, in order:
//
//	{"containers": [{"env": {"NAME": "value"}, "command": [...], "args": [...], "probes": {"livenessProbe": [...]}}]}
//
// The expansion is the kubelet's own code: third_party/forked/golang/expansion, and pkg/kubelet/container's
// ExpandContainerCommandAndArgs (command, args: the full environment) and ExpandContainerCommandOnlyStatic (exec
// probes: `value` variables only). Only the loop that gives each variable its value is copied, as
// makeEnvironmentVariables is a method of the Kubelet, which needs a running node:
// https://github.com/kubernetes/kubernetes/blob/v1.36.3/pkg/kubelet/kubelet_pods.go (the `container.Env` loop).
package main

import (
	"encoding/json"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

type request struct {
	Containers []v1.Container    `json:"containers"`
	Resolved   map[string]string `json:"resolved"`
	ServiceEnv map[string]string `json:"serviceEnv"`
}

type response struct {
	Containers []started `json:"containers"`
}

type started struct {
	Env     map[string]string   `json:"env"`
	Command []string            `json:"command"`
	Args    []string            `json:"args"`
	Probes  map[string][]string `json:"probes"`
}

// environment is makeEnvironmentVariables' `container.Env` loop: a `value` is expanded against the variables
// declared before it and the service variables; a `valueFrom` is resolved, never expanded.
func environment(container v1.Container, resolved, serviceEnv map[string]string) (map[string]string, error) {
	tmpEnv := map[string]string{}
	mappingFunc := expansion.MappingFuncFor(tmpEnv, serviceEnv)
	for _, envVar := range container.Env {
		runtimeVal := envVar.Value
		if runtimeVal != "" {
			runtimeVal = expansion.Expand(runtimeVal, mappingFunc)
		} else if envVar.ValueFrom != nil {
			value, ok := resolved[envVar.Name]
			if !ok {
				return nil, fmt.Errorf("no resolved value given for %s (valueFrom)", envVar.Name)
			}
			runtimeVal = value
		}
		tmpEnv[envVar.Name] = runtimeVal
	}
	return tmpEnv, nil
}

func start(container v1.Container, resolved, serviceEnv map[string]string) (started, error) {
	env, err := environment(container, resolved, serviceEnv)
	if err != nil {
		return started{}, fmt.Errorf("container %s: %w", container.Name, err)
	}
	var envs []kubecontainer.EnvVar
	for name, value := range env {
		envs = append(envs, kubecontainer.EnvVar{Name: name, Value: value})
	}
	for name, value := range serviceEnv {
		if _, present := env[name]; !present {
			envs = append(envs, kubecontainer.EnvVar{Name: name, Value: value})
		}
	}
	out := started{Env: env, Probes: map[string][]string{}}
	out.Command, out.Args = kubecontainer.ExpandContainerCommandAndArgs(&container, envs)
	probes := map[string]*v1.Probe{
		"startupProbe":   container.StartupProbe,
		"livenessProbe":  container.LivenessProbe,
		"readinessProbe": container.ReadinessProbe,
	}
	for name, probe := range probes {
		if probe != nil && probe.Exec != nil {
			// The prober's call (pkg/kubelet/prober/prober.go): the declared `value`s only, unexpanded.
			out.Probes[name] = kubecontainer.ExpandContainerCommandOnlyStatic(probe.Exec.Command, container.Env)
		}
	}
	return out, nil
}

func run() error {
	decoder := json.NewDecoder(os.Stdin)
	decoder.DisallowUnknownFields() // a field the Container type does not know is a rendering bug
	var in request
	if err := decoder.Decode(&in); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	out := response{Containers: []started{}}
	for _, container := range in.Containers {
		one, err := start(container, in.Resolved, in.ServiceEnv)
		if err != nil {
			return err
		}
		out.Containers = append(out.Containers, one)
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet-expand:", err)
		os.Exit(1)
	}
}
