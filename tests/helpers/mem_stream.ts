/** Kept for imports in flight on other branches: the in-memory links live in mem_pipe.ts now. */
export { MemoryEnd, memoryPipe } from "./mem_pipe.ts";
