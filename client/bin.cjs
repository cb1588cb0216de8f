#!/usr/bin/env node
// The installed `bootc-release` command: runs the TypeScript CLI through tsx, no build step.
require('tsx/cjs/api').register();
require('./cli.ts');
