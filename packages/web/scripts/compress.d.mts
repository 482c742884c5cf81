/** Compresses every compressible file under `dir` (.br and .gz beside it); returns how many. */
export function compressDir(dir: string): number;
