// Signs an approver's decision with their SSH key through OpenSSH's own `ssh-keygen -Y sign`, so the private key
// (or the ssh-agent holding it) never passes through bootc-release. The workflow checks the signature against the
// keys the definition lists for that approver (workflows/approval-signature.ts).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  APPROVAL_NAMESPACE,
  approvalText,
  channelActionText,
  type ChannelSignedFields,
  type SignedFields,
} from '../workflows/approval-signature';

/**
 * `key` is a private key file, or a public key file whose private half is in ssh-agent (as with `ssh-keygen -Y
 * sign -f key.pub`). Returns the armored signature of the decision's text.
 */
export async function signDecision(key: string, fields: SignedFields): Promise<string> {
  return await signText(key, approvalText(fields));
}

/** The same for a channel action (promote, rollback, mark-tested). */
export async function signChannelAction(key: string, fields: ChannelSignedFields): Promise<string> {
  return await signText(key, channelActionText(fields));
}

async function signText(key: string, text: string): Promise<string> {
  if (!existsSync(key)) throw new Error(`--key: ${key} does not exist (give the approver's SSH key file)`);
  return await new Promise((resolve, reject) => {
    const child = execFile('ssh-keygen', ['-q', '-Y', 'sign', '-f', key, '-n', APPROVAL_NAMESPACE], (err, stdout, stderr) => {
      if (err)
        reject(new Error(`--key: ssh-keygen could not sign with ${key}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    child.stdin!.end(text);
  });
}
