import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
const { selectBackend } = await import('./dist/worker/backend/select.js');
const { WINOGRAD } = await import('./dist/worker/backend/wasm_kernels/conv2d.js');
await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
const [n,h,ci,co,mode] = process.argv.slice(2);
const N=+n,H=+h,CI=+ci,CO=+co;
let x = tf.randomNormal([N,H,H,CI],0,1,'float32',1);
if (mode==='relu') x = tf.clipByValue(tf.add(x,0.5),0,6);
const w = tf.randomNormal([3,3,CI,CO],0,0.05,'float32',2);
const xs = x.dataSync(), ws = w.dataSync();
const ref = new Float64Array(N*H*H*CO);
for (let b=0;b<N;b++) for (let i=0;i<H;i++) for (let j=0;j<H;j++) { const o=((b*H+i)*H+j)*CO;
  for (let kh=0;kh<3;kh++){const ii=i-1+kh; if(ii<0||ii>=H) continue; for(let kw=0;kw<3;kw++){const jj=j-1+kw; if(jj<0||jj>=H) continue;
   const xo=((b*H+ii)*H+jj)*CI, wo=(kh*3+kw)*CI*CO; for(let c=0;c<CI;c++){const xv=xs[xo+c]; const wr=wo+c*CO; for(let k=0;k<CO;k++) ref[o+k]+=xv*ws[wr+k];}}}}
let scale=0, sq=0; for (const v of ref) {scale=Math.max(scale,Math.abs(v)); sq+=v*v;}
const rmsRef=Math.sqrt(sq/ref.length);
const err = (a) => { let m=0, s=0; for (let i=0;i<a.length;i++){const d=Math.abs(a[i]-ref[i]); m=Math.max(m,d); s+=d*d;} return [m/scale, Math.sqrt(s/a.length)/rmsRef]; };
const run = () => tf.tidy(() => tf.conv2d(x,w,1,'same')).dataSync();
for (const t of [2,4]) { WINOGRAD.tile=t; console.log(mode, 'F'+t, err(run()).map(v=>v.toExponential(2)).join(' ')); }
WINOGRAD.enabled=false; console.log(mode,'xnnpack', err(run()).map(v=>v.toExponential(2)).join(' '));
