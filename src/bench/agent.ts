export async function benchAgent(_o: { iterations: number }): Promise<unknown> { throw new Error('not yet'); }
