// The local provider's public surface.
export { LocalProvider, listYamlFiles, readFileState, type LocalProviderOptions } from "./local-provider.js";
export { parseFile, stableUid, type FileParse, type SourcedObject } from "./parse.js";
export { assembleSnapshot, applyPodFacts, allocateVips, emptyFacts, type AssembleResult } from "./assemble.js";
export { expandWorkload, templateHash, nameSuffix, type Expansion } from "./expand.js";
