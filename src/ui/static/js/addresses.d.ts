// Types of addresses.js for the server's TypeScript, which reads no JavaScript (the browser's code is checked by its own tsconfig).
export declare const PAGE_ADDRESSES: Readonly<Record<'profile' | 'myTokens' | 'mySessions' | 'access' | 'member' | 'users' | 'user' | 'allTokens' | 'allSessions' | 'applications' | 'application' | 'settings' | 'services' | 'activity', RegExp>>
export declare function isPageAddress(path: string): boolean
