/* CSS imported from the app's modules is bundled into assets/app.css by esbuild. */
declare module '*.css';
