#!/usr/bin/perl
# 704-kap-init-errors.t -- what `kap init` refuses, each with a message
# that says what to do and nothing written: an invalid devcontainer.json
# (reported as FILE:LINE:COL), a duplicate key, a top-level array, one
# with neither image, build nor compose, a root
# .devcontainer.json, leftovers without devcontainer.json, an image-based
# one beside an unrelated docker-compose.yml, a Dockerfile-built one with
# a context kap init does not convert, a missing -p directory, an
# unknown option.  `kap help init` and the usage line.  And `kap-shim
# jsonc` as a command: exit 0/1/2 for found/absent/invalid, edits on
# standard output, FILE:LINE:COL for broken input.

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

my $n = 0;
# refused(JSON-or-undef, \%files, [args], qr/message/, name)
sub refused {
    my ($json, $files, $args, $re, $name) = @_;
    my $p = $t->testdir . '/p' . ++$n;
    make_path("$p/.devcontainer");
    spew("$p/.devcontainer/devcontainer.json", $json) if defined $json;
    spew("$p/$_", $files->{$_}) for keys %$files;
    my $before = tree($p);
    my $r = $k->kap({ cwd => $p }, 'init', '-y', @$args);
    is($r->{rc}, 1, "$name: exit 1");
    like($r->{err}, $re, "$name: the message") or diag($r->{err});
    is_deeply(tree($p), $before, "$name: nothing written");
}

refused("{\n  \"image\": \"x\"\n  \"name\": \"y\"\n}\n", {}, [],
        qr{^kap: init: .*/\.devcontainer/devcontainer\.json:3:3: ',' or '\}' expected \(fix it}m,
        'a missing comma');
refused("{\"image\": \"x\", /* open\n", {}, [], qr/devcontainer\.json:1:16: unterminated comment/,
        'an unterminated comment');
refused("{\"image\": \"x\", \"image\": \"y\"}", {}, [], qr/devcontainer\.json:1:16: the member name occurs twice/,
        'a duplicate key');
refused("[1]", {}, [], qr/devcontainer\.json:1:1: the top-level value is not an object/,
        'a top-level array');
refused('{"build": {"dockerfile": "Dockerfile", "context": "src"}}', {}, [],
        qr/build context src: kap init converts a context of "\." or "\.\." only/,
        'a Dockerfile-built devcontainer with another context');
refused('{"build": {"context": ".."}}', {}, [], qr/"build" names no dockerfile/, 'a build without a dockerfile');
refused('{"name": "x"}', {}, [], qr/no "image", "build" or "dockerComposeFile"/, 'neither image nor compose');
refused('{"image": "x"}', { '.devcontainer/docker-compose.yml' => "services: {}\n" }, [],
        qr/docker-compose\.yml exists but devcontainer\.json does not use it/, 'an unrelated compose file');
refused(undef, { '.devcontainer.json' => '{"image": "x"}' }, [],
        qr/move \.devcontainer\.json to \.devcontainer\/devcontainer\.json/, 'a root .devcontainer.json');
refused(undef, { '.devcontainer/Dockerfile' => "FROM x\n" }, [],
        qr/Dockerfile exists but no devcontainer\.json/, 'a Dockerfile without devcontainer.json');
refused(undef, {}, ['-p', '/nonexistent/dir'], qr/nonexistent\/dir: not a directory/, 'a missing -p DIR');
refused(undef, {}, ['--bogus'], qr/unknown argument --bogus \(see kap help init\)/, 'an unknown option');

my $r = $k->kap({}, 'help', 'init');
is($r->{rc}, 0, 'kap help init');
like($r->{out}, qr/^usage: kap init \[-p DIR\] \[-y\] \[-f\]$/m, '... the usage');
like($k->kap({}, '--help')->{out}, qr/^  init \[-p DIR\] \[-y\] \[-f\]$/m, 'kap --help lists init');

# ---- kap-shim jsonc as a command ------------------------------------------------
my $f = $t->testdir . '/dc.json';
spew($f, "{\n  // c\n  \"a\": {\"b\": [\"x\", \"y\"]},\n  \"s\": \"q\\\"\\u00e9\",\n}\n");
$r = $k->jsonc('get', $f, 'a', 'b', '1');
is_deeply([$r->{rc}, $r->{out}], [0, "y\n"], 'jsonc get through objects and an array index');
is($k->jsonc('get', $f, 's')->{out}, "q\"\xc3\xa9\n", 'jsonc get decodes a string');
is($k->jsonc('get', $f, 'a')->{out}, "{\"b\":[\"x\",\"y\"]}\n", 'jsonc get: compact JSON');
is($k->jsonc('type', $f, 'a', 'b')->{out}, "array\n", 'jsonc type');
is($k->jsonc('get', $f, 'nope')->{rc}, 1, 'jsonc get: absent is exit 1');
is($k->jsonc('set', $f, 'nope', 'x', '1')->{rc}, 1, 'jsonc set below an absent key: exit 1');
$r = $k->jsonc('set', $f, 'n', '[1, 2]');
is($r->{out}, "{\n  // c\n  \"a\": {\"b\": [\"x\", \"y\"]},\n  \"s\": \"q\\\"\\u00e9\",\n  \"n\": [1, 2],\n}\n",
   'jsonc set prints the new document');
is($k->jsonc('set', $f, 'n', '[1,')->{rc}, 2, 'jsonc set refuses a value that is not JSON');
$r = $k->jsonc('remove', $f, 'a');
is($r->{out}, "{\n  // c\n  \"s\": \"q\\\"\\u00e9\",\n}\n", 'jsonc remove');
$r = $k->jsonc('append', $f, 'a', 'b', '"z"');
is($r->{out}, "{\n  // c\n  \"a\": {\"b\": [\"x\", \"y\", \"z\"]},\n  \"s\": \"q\\\"\\u00e9\",\n}\n",
   'jsonc append');
is($k->jsonc('quote', "a\"b")->{out}, "\"a\\\"b\"\n", 'jsonc quote');
spew($f, "{\n\t\"a\": 1,\n\t\"b\" 2\n}");
$r = $k->jsonc('check', $f);
is($r->{rc}, 2, 'jsonc check: invalid is exit 2');
is($r->{err}, "kap-shim jsonc: $f:3:6: ':' expected after a member name\n", '... with FILE:LINE:COL');
is($k->jsonc('check', $t->testdir . '/none')->{rc}, 2, 'jsonc check: a missing file is exit 2');

$t->done_testing;
