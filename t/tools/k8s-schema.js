#!/usr/bin/env node
// t/tools/k8s-schema.js -- schema check of rendered Kubernetes objects,
// offline, with the npm package kubernetes-models (4.x: node >= 14),
// installed by name beforehand (contrib/install-deps --test: `npm install -g kubernetes-models@4`)
// and found through NODE_PATH.  Reads a JSON array of objects on stdin.
//
// Two checks per object, one line per problem on stdout, exit 1 if any:
//  - the package's validator: types, enums, required fields;
//  - strict: no field the API does not define.  The validator allows
//    unknown fields (additionalProperties is not false in the schemas), so
//    the known field names are read from the package's type declarations
//    (.d.ts: one interface per API type, a quoted property per field) and
//    every object is walked against them.
// A kind the package does not know (the agent-sandbox SandboxTemplate)
// has its pod template checked as a PodSpec and its policy rules as
// NetworkPolicy rules; its own top-level fields are listed below.
'use strict';
const fs = require('fs');
const path = require('path');

let root;
try {
    root = path.dirname(require.resolve('kubernetes-models/package.json'));
} catch (e) {
    console.log('SKIP kubernetes-models is not installed (npm install -g kubernetes-models@4; NODE_PATH)');
    process.exit(3);
}
// (a dependency: beside it, or under it in a global install)
const machinery = path.dirname(require.resolve('@kubernetes-models/apimachinery/package.json', { paths: [root] }));

// ---- the field names of every API type, from the .d.ts files -------------------
const types = {};          // full name (IIoK8sApiAppsV1DeploymentSpec) -> {prop: type}
function scan(dir) {
    for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, ent.name);
        if (ent.isDirectory()) { if (ent.name !== 'node_modules' && ent.name !== '_schemas') scan(p); continue; }
        if (!ent.name.endsWith('.d.ts')) continue;
        const text = fs.readFileSync(p, 'utf8');
        const local = {};
        const re = /export interface (\w+)(?: extends ([\w, ]+))? \{\n([\s\S]*?)\n\}/g;
        let m;
        while ((m = re.exec(text))) {
            // TypeMeta: apiVersion and kind
            const props = m[2] && m[2].includes('TypeMeta') ? { apiVersion: 'string', kind: 'string' } : {};
            for (const line of m[3].split('\n')) {
                // "name"?: Type;   or   "name"?: {   (a map of strings, on lines of its own)
                const pm = /^ {4}"([^"]+)"\??: (.+?);?$/.exec(line);
                if (pm) props[pm[1]] = pm[2] === '{' ? 'map' : pm[2];
            }
            local[m[1]] = props;
        }
        const ex = /export \{ (\w+) as (\w+)/g;
        while ((m = ex.exec(text))) if (local[m[1]]) types[m[2]] = local[m[1]];
        for (const k of Object.keys(local)) types[k] = types[k] || local[k];
    }
}
scan(root);
scan(machinery);

const problems = [];
function strict(obj, type, where) {
    if (obj === null || typeof obj !== 'object') return;
    let m = /^Array<(\w+)>$/.exec(type);
    if (m) {
        if (Array.isArray(obj)) obj.forEach((v, i) => strict(v, m[1], `${where}[${i}]`));
        return;
    }
    m = /^\{\s*\[key: string\]: (\w+);?\s*\}$/.exec(type);
    if (m) { for (const k of Object.keys(obj)) strict(obj[k], m[1], `${where}.${k}`); return; }
    if (type === 'map') return;         // label and annotation maps: any key
    const props = types[type];
    if (!props) {                       // a scalar alias (IntOrString, Quantity) holds no object
        if (!Array.isArray(obj)) problems.push(`${where}: no field list for its type ${type}`);
        return;
    }
    for (const k of Object.keys(obj)) {
        if (!(k in props)) problems.push(`${where}: unknown field "${k}"`);
        else strict(obj[k], props[k], `${where}.${k}`);
    }
}

function model(apiVersion, kind) {
    const dir = apiVersion.includes('/') ? apiVersion : `v1`;
    const file = path.join(root, dir, `${kind}.js`);
    if (!fs.existsSync(file)) return null;
    return require(file)[kind];
}

const SANDBOX_SPEC = ['podTemplate', 'networkPolicy', 'networkPolicyManagement',
                      'envVarsInjectionPolicy', 'volumeClaimTemplatesPolicy',
                      'generatedSecrets', 'volumeClaimTemplates'];
const objs = JSON.parse(fs.readFileSync(0, 'utf8'));
for (const o of objs) {
    const name = `${o.kind}/${(o.metadata || {}).name}`;
    const M = model(o.apiVersion || '', o.kind || '');
    if (M) {
        try { new M(o).validate(); } catch (e) { problems.push(`${name}: ${e.message.split('\n').join('; ')}`); }
        const iface = `I${o.kind}`;
        const file = path.join(root, o.apiVersion.includes('/') ? o.apiVersion : 'v1', `${o.kind}.d.ts`);
        const text = fs.readFileSync(file, 'utf8');
        const alias = new RegExp(`export \\{ ${iface} as (\\w+)`).exec(text);
        strict(o, alias ? alias[1] : iface, name);
        continue;
    }
    if (o.kind === 'SandboxTemplate' && o.apiVersion === 'extensions.agents.x-k8s.io/v1beta1') {
        const s = o.spec || {};
        for (const k of Object.keys(o)) if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(k)) problems.push(`${name}: unknown field "${k}"`);
        strict(o.metadata, 'IIoK8sApimachineryPkgApisMetaV1ObjectMeta', `${name}.metadata`);
        for (const k of Object.keys(s)) if (!SANDBOX_SPEC.includes(k)) problems.push(`${name}.spec: unknown field "${k}"`);
        const pt = s.podTemplate || {};
        for (const k of Object.keys(pt)) if (!['metadata', 'spec'].includes(k)) problems.push(`${name}.spec.podTemplate: unknown field "${k}"`);
        const Pod = model('v1', 'Pod');
        try { new Pod({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: pt.spec }).validate(); }
        catch (e) { problems.push(`${name}.spec.podTemplate.spec: ${e.message.split('\n').join('; ')}`); }
        strict(pt.spec, 'IIoK8sApiCoreV1PodSpec', `${name}.spec.podTemplate.spec`);
        const np = s.networkPolicy || {};
        for (const k of Object.keys(np)) if (!['ingress', 'egress'].includes(k)) problems.push(`${name}.spec.networkPolicy: unknown field "${k}"`);
        const NP = model('networking.k8s.io/v1', 'NetworkPolicy');
        try { new NP({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'x' }, spec: { podSelector: {}, ingress: np.ingress, egress: np.egress } }).validate(); }
        catch (e) { problems.push(`${name}.spec.networkPolicy: ${e.message.split('\n').join('; ')}`); }
        strict(np.egress || [], 'Array<IIoK8sApiNetworkingV1NetworkPolicyEgressRule>', `${name}.spec.networkPolicy.egress`);
        strict(np.ingress || [], 'Array<IIoK8sApiNetworkingV1NetworkPolicyIngressRule>', `${name}.spec.networkPolicy.ingress`);
        if (!['Managed', 'Unmanaged', undefined].includes(s.networkPolicyManagement)) problems.push(`${name}.spec.networkPolicyManagement: not Managed or Unmanaged`);
        continue;
    }
    problems.push(`${name}: ${o.apiVersion} ${o.kind} is not a kind this check knows`);
}
for (const p of problems) console.log(p);
console.log(`checked ${objs.length} objects against kubernetes-models ${require(path.join(root, 'package.json')).version}: ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
