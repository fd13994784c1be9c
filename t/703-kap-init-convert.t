#!/usr/bin/perl
# 703-kap-init-convert.t -- `kap init` on existing devcontainers (no
# Docker needed).  An image-based one becomes Docker Compose: the
# document is edited in place -- every byte the conversion does not have
# to touch (comments, unknown keys, tabs, trailing commas, key order)
# stays, "image" goes, kap's keys are added after the last member --
# and docker-compose.yml runs that image as service "app" with the
# project at workspaceFolder (${localWorkspaceFolderBasename} resolved);
# a Dockerfile-based one gets a build: section (the dockerfile made
# relative to the context, the target kept, build.args a note);
# what does not carry over (runArgs, privileges) is a note.  A compose
# one keeps its service and files, gets the overlay appended, and its
# lifecycle commands merged (string and array forms become objects with
# "existing").  Both are idempotent: -f changes nothing the second time.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Kapd;
use Test::KapInit;
use File::Path qw(make_path);

my $t = Test::Kapd->new;
my $k = Test::KapInit->new($t);
plan(skip_all => 'kap-shim not built') unless -x $k->shim;

# ---- image-based -------------------------------------------------------------
my $img = $t->testdir . '/imgproj';
make_path("$img/.devcontainer");
my $orig = <<'EOF';
// My project's container
{
	"name": "My Project", // shown in VS Code
	/* the base image */
	"image": "example.invalid/base:1 \"quoted\"",
	"features": {
		"example.invalid/features/node:1": {"version": "lts"},
	},
	"unknownKey": [1, 2, 3], // keep me
	"runArgs": ["--cap-add=NET_ADMIN"],
	"privileged": true,
	"workspaceFolder": "/src/${localWorkspaceFolderBasename}",
	"postStartCommand": "echo hi",
}
EOF
spew("$img/.devcontainer/devcontainer.json", $orig);

my $r = $k->kap({ cwd => $img }, 'init', '-y');
is($r->{rc}, 0, 'kap init -y converts an image-based devcontainer') or diag($r->{err});
my $want = <<'EOF';
// My project's container
{
	"name": "My Project", // shown in VS Code
	/* the base image */
	"features": {
		"example.invalid/features/node:1": {"version": "lts"},
	},
	"unknownKey": [1, 2, 3], // keep me
	"runArgs": ["--cap-add=NET_ADMIN"],
	"privileged": true,
	"workspaceFolder": "/src/${localWorkspaceFolderBasename}",
	"postStartCommand": {"existing": "echo hi", "kap-setup": "/opt/kap/bin/kap-post-start"},
	"dockerComposeFile": ["docker-compose.yml", "docker-compose.kap.yml"],
	"service": "app",
	"initializeCommand": "kap overlay",
	"remoteEnv": {"PATH": "/opt/kap/bin:${containerEnv:PATH}"},
}
EOF
is(slurp("$img/.devcontainer/devcontainer.json"), $want,
   'devcontainer.json: the image line goes, kap\'s keys come last, every other byte stays');
my $c = slurp("$img/.devcontainer/docker-compose.yml");
like($c, qr/^    image: "example\.invalid\/base:1 \\"quoted\\""$/m, 'compose: the image, quoted');
like($c, qr{^      - "\.\.:/src/imgproj:cached"$}m, 'compose: the project at workspaceFolder, resolved');
like($c, qr/^    command: sleep infinity$/m, 'compose: sleep infinity');
like($r->{out}, qr/note: runArgs is kept but .*ignores it with Docker Compose/, 'a note on runArgs');
like($r->{out}, qr/note: privileged: .*remove privileged/, 'a note on privileged');
like($r->{out}, qr/note: postStartCommand was one command.*"existing"/, 'a note on postStartCommand');
ok(-f "$img/.devcontainer/kap.conf", 'kap.conf written');
ok(!-e "$img/.devcontainer/Dockerfile", 'no Dockerfile for a converted project');

my $before = tree($img);
$r = $k->kap({ cwd => $img }, 'init', '-y', '-f');
is($r->{rc}, 0, 'kap init -y -f on the converted project') or diag($r->{err});
is_deeply(tree($img), $before, '... changes nothing');

# without -y and without a terminal: the default answer (convert), said
my $img2 = $t->testdir . '/img2';
make_path("$img2/.devcontainer");
spew("$img2/.devcontainer/devcontainer.json", "{\"image\": \"x\"}");
$r = $k->kap({ cwd => $img2 }, 'init');
is($r->{rc}, 0, 'kap init without a terminal');
like($r->{out}, qr/no terminal to ask on/, '... says it uses the default answers');
is(slurp("$img2/.devcontainer/devcontainer.json") . "\n", <<'EOF', 'the only member replaced: one member a line');
{
    "dockerComposeFile": ["docker-compose.yml", "docker-compose.kap.yml"],
    "service": "app",
    "workspaceFolder": "/workspaces/img2",
    "initializeCommand": "kap overlay",
    "remoteEnv": {"PATH": "/opt/kap/bin:${containerEnv:PATH}"},
    "postStartCommand": {"kap-setup": "/opt/kap/bin/kap-post-start"}
}
EOF

# ---- Dockerfile-based ------------------------------------------------------------
my $bp = $t->testdir . '/buildproj';
make_path("$bp/.devcontainer");
spew("$bp/.devcontainer/devcontainer.json", <<'EOF');
{
    "name": "b",
    "build": {
        "dockerfile": "Dockerfile",
        "context": "..",
        "target": "dev",
        "args": {"V": "1"}
    },
    "customizations": {}
}
EOF
$r = $k->kap({ cwd => $bp }, 'init', '-y');
is($r->{rc}, 0, 'kap init -y converts a Dockerfile-based devcontainer') or diag($r->{err});
like(slurp("$bp/.devcontainer/docker-compose.yml"),
     qr/^    build:\n      context: "\.\."\n      dockerfile: "\.devcontainer\/Dockerfile"\n      target: "dev"\n    volumes:\n/m,
     'compose: built from the Dockerfile, relative to the context, with the target');
is($k->jsonc('type', "$bp/.devcontainer/devcontainer.json", 'build')->{rc}, 1, '"build" is gone');
like(slurp("$bp/.devcontainer/devcontainer.json"), qr/^    "customizations": \{\},\n    "dockerComposeFile"/m,
     'the other keys stay, kap\'s follow');
like($r->{out}, qr/note: build\.args: copy them to docker-compose\.yml/, 'a note on build.args');

# ---- compose-based -------------------------------------------------------------
my $cp = $t->testdir . '/composeproj';
make_path("$cp/.devcontainer");
my $compose = "services:\n  web:\n    image: x\n";
spew("$cp/.devcontainer/compose.yaml", $compose);
spew("$cp/.devcontainer/devcontainer.json", <<'EOF');
{
    // compose, the user's
    "dockerComposeFile": "compose.yaml",
    "service": "web",
    "workspaceFolder": "/app",
    "initializeCommand": {"mine": "make prep"},
    "postStartCommand": ["npm", "start"],
    "remoteEnv": {
        "PATH": "/usr/local/go/bin:${containerEnv:PATH}",
        "FOO": "1"
    }
}
EOF
$r = $k->kap({ cwd => $cp }, 'init', '-y');
is($r->{rc}, 0, 'kap init -y on a compose devcontainer') or diag($r->{err});
is(slurp("$cp/.devcontainer/devcontainer.json"), <<'EOF', 'devcontainer.json: merged in place');
{
    // compose, the user's
    "dockerComposeFile": ["compose.yaml", "docker-compose.kap.yml"],
    "service": "web",
    "workspaceFolder": "/app",
    "initializeCommand": {"mine": "make prep", "kap-overlay": "kap overlay"},
    "postStartCommand": {"existing": ["npm","start"], "kap-setup": "/opt/kap/bin/kap-post-start"},
    "remoteEnv": {
        "PATH": "/opt/kap/bin:/usr/local/go/bin:${containerEnv:PATH}",
        "FOO": "1"
    }
}
EOF
is(slurp("$cp/.devcontainer/compose.yaml"), $compose, 'the user\'s compose file is untouched');
ok(!-e "$cp/.devcontainer/docker-compose.yml", 'no docker-compose.yml written');
like($r->{out}, qr/note: remoteEnv\.PATH: \/opt\/kap\/bin put in front/, 'a note on PATH');
$before = tree($cp);
$r = $k->kap({ cwd => $cp }, 'init', '-yf');
is_deeply(tree($cp), $before, 'a second run (-f) changes nothing');

# the overlay listed already, but not last: a note, no edit
my $cp2 = $t->testdir . '/cp2';
make_path("$cp2/.devcontainer");
my $j2 = '{"dockerComposeFile": ["docker-compose.kap.yml", "a.yml"], "service": "s", '
    . '"initializeCommand": "kap overlay && true", "remoteEnv": {"PATH": "/opt/kap/bin:/bin"}, '
    . '"postStartCommand": {"x": "/opt/kap/bin/kap-post-start"}}';
spew("$cp2/.devcontainer/devcontainer.json", $j2);
$r = $k->kap({ cwd => $cp2 }, 'init', '-y');
is($r->{rc}, 0, 'kap init on a devcontainer that has kap\'s parts');
is(slurp("$cp2/.devcontainer/devcontainer.json"), $j2, '... leaves it as it is');
like($r->{out}, qr/docker-compose\.kap\.yml must be the last file/, '... with a note on the order');

$t->done_testing;
