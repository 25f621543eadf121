#!/usr/bin/env node
'use strict'
require('../dist/cli/cli.js')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code
  })
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
