/**
 * Import rules checked in CI (`npm run lint:imports`): no import cycle between files, and none
 * between folders (src/dispatch importing src/deliveries while src/deliveries imports
 * src/dispatch, say), so that each folder can be read, tested and replaced on its own.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-file-cycle',
      severity: 'error',
      comment: 'A file that imports itself through other files.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-folder-cycle',
      severity: 'error',
      scope: 'folder',
      comment: 'A folder whose files import, through other folders, files of that folder.',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: false,
  },
};
