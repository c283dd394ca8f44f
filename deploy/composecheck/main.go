// Command composecheck validates docker-compose.yml with compose-go, the loader `docker compose` v2
// is built on: the same schema, interpolation and consistency checks as
// `docker compose --env-file FILE --profile P config -q`, without a Docker engine or the CLI plugin.
// scripts/check-deploy.sh builds and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	envFile := flag.String("env-file", "", "env file for interpolation (default: .env beside the compose file, if any)")
	var profiles repeated
	flag.Var(&profiles, "profile", "profile to enable (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [--env-file FILE] [--profile NAME]... COMPOSE_FILE")
		os.Exit(2)
	}
	file, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	options := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithOsEnv}
	if *envFile != "" {
		options = append(options, cli.WithEnvFiles(*envFile))
	}
	options = append(options, cli.WithDotEnv, cli.WithProfiles(profiles))
	projectOptions, err := cli.NewProjectOptions([]string{file}, options...)
	if err != nil {
		fail(err)
	}
	project, err := projectOptions.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Println(strings.Join(names, "\n"))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
