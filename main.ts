// mailmeet CLI entry: parse, load config, dispatch. Everything else lives in src/.
console.error("mailmeet: not built yet");
Deno.exit(1);
