// Generated from the personae service's OpenAPI schema by scripts/schema.mjs: do not edit.
export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Healthz
         * @description The process answers (liveness: always open, even with ``--private-ops``).
         */
        get: operations["healthz_healthz_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Metrics Text
         * @description Prometheus metrics: requests and latencies by route, LM calls and tokens, update jobs (with
         *     ``--private-ops``: to a token with the ``ops`` scope).
         */
        get: operations["metrics_text_metrics_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readyz
         * @description The store's database answers with a current schema, and a judge is loaded (with ``--private-ops``:
         *     to a token with the ``ops`` scope).
         */
        get: operations["readyz_readyz_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{job_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Job
         * @description An update job: pending, running, done (with what it did) or failed (with why).
         */
        get: operations["job_v1_jobs__job_id__get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List Users
         * @description This tenant's users, in id order, a page at a time (pass ``next_after`` as ``after``).
         */
        get: operations["list_users_v1_users_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Forget
         * @description Remove everything stored on the user: preferences, personas, judgments, jobs.
         */
        delete: operations["forget_v1_users__user_id__delete"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/export": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Export
         * @description The user's fitted judge: the same JSON that ``personae fit`` writes.
         */
        get: operations["export_v1_users__user_id__export_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/generation-prompt": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Generation Prompt
         * @description A system prompt for writing responses this user prefers (chat messages).
         */
        get: operations["generation_prompt_v1_users__user_id__generation_prompt_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/judge": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Judge
         * @description Which response the user prefers ("A" or "B"), with its probability, by the current persona.
         *     ``Server-Timing: store;dur=MS`` says how long the store and its judge took (not the wait for a
         *     judge slot: 503 ``overloaded`` when the judge's queue is full).
         */
        post: operations["judge_v1_users__user_id__judge_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/persona": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Persona
         * @description The current persona, its version, pairs seen, prequential accuracy and confidence.
         */
        get: operations["persona_v1_users__user_id__persona_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/persona/history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * History
         * @description Every persona version, oldest first, with how it was made and how it did since.
         */
        get: operations["history_v1_users__user_id__persona_history_get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/preferences": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Preferences
         * @description The user's stored preferences, in the order they arrived.
         */
        get: operations["preferences_v1_users__user_id__preferences_get"];
        put?: never;
        /**
         * Add Preferences
         * @description Store preferences (at most 256 a request). Idempotent by client ``id`` (else by content):
         *     a retry reports them as ``duplicates`` and queues nothing.
         */
        post: operations["add_preferences_v1_users__user_id__preferences_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/users/{user_id}/rank": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Rank
         * @description The best of several drafts for the user, and their order (``Server-Timing`` as for judge).
         */
        post: operations["rank_v1_users__user_id__rank_post"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** AddPreferencesRequest */
        AddPreferencesRequest: {
            /** Preferences */
            preferences: components["schemas"]["PreferenceIn"][];
        };
        /**
         * AddResult
         * @description What an add did: the preference ids stored now, those already there, the update job.
         */
        AddResult: {
            /** Added */
            added: string[];
            /** Duplicates */
            duplicates: string[];
            /** Job Id */
            job_id: string | null;
        };
        /** ErrorBody */
        ErrorBody: {
            error: components["schemas"]["ErrorDetail"];
        };
        /**
         * ErrorDetail
         * @description What went wrong: the kind of error, a message, the field at fault.
         */
        ErrorDetail: {
            /** Errors */
            errors?: components["schemas"]["FieldError"][] | null;
            /**
             * Failure
             * @description how the judge's model failed: timeout, rate_limit, server, transport, lm, parse, content, context_window, invalid_request
             */
            failure?: string | null;
            /**
             * Field
             * @description the field at fault, as a dotted path (body.preferences.0.chosen)
             */
            field?: string | null;
            /** Message */
            message: string;
            /**
             * Record
             * @description the preference at fault (1-based) in a request that adds them
             */
            record?: number | null;
            /** Request Id */
            request_id?: string | null;
            /**
             * Retry After
             * @description seconds to wait before retrying, when a retry may work
             */
            retry_after?: number | null;
            /**
             * Type
             * @description the kind of error: invalid_request (422): a malformed request (the field is named), or one the judge's model refused; unauthorized (401): no bearer token, or an unknown, revoked or expired one; forbidden (403): the token lacks the scope this needs (the message names it); not_found (404): no such user or job in this token's tenant; no_route (404): no such route; method_not_allowed (405): the route takes another method; timeout (408): the request body did not arrive in time; conflict (409): the user has no persona version yet (or not the one asked for); payload_too_large (413): the body is larger than the service takes; rate_limited (429): the token's tenant sent more requests a second, or has more in flight, than the service takes; internal (500): a bug; the server log has the details under the request id; lm_bad_answer (502): the judge's model gave no usable answer; lm_unavailable (503): the judge's model did not answer, or is misconfigured; store_unavailable (503): the persona store's database is busy, unreachable or not ready; overloaded (503): the judge is at capacity and its queue full, or the request waited too long
             */
            type: string;
        };
        /** FieldError */
        FieldError: {
            /** Loc */
            loc: (string | number)[];
            /** Msg */
            msg: string;
            /** Type */
            type: string;
        };
        /** Forgotten */
        Forgotten: {
            /** Removed */
            removed: {
                [key: string]: number;
            };
            /** User Id */
            user_id: string;
        };
        /** GenerationPrompt */
        GenerationPrompt: {
            /** Messages */
            messages: {
                [key: string]: string;
            }[];
            /** Personalization */
            personalization: string;
            /** Version */
            version: number | null;
        };
        /** Health */
        Health: {
            /** Detail */
            detail: {
                [key: string]: unknown;
            };
            /** Status */
            status: string;
        };
        /** HistoryOut */
        HistoryOut: {
            /** Versions */
            versions: components["schemas"]["PersonaVersion"][];
        };
        /**
         * Job
         * @description An update job as stored: ``status`` is ``pending``, ``running``, ``done`` or ``failed``.
         */
        Job: {
            /** Attempts */
            attempts: number;
            /** Created At */
            created_at: number;
            /** Due At */
            due_at: number;
            /** Error */
            error: string | null;
            /** Finished At */
            finished_at: number | null;
            /** Id */
            id: string;
            /** Kind */
            kind: string | null;
            /** Result */
            result: {
                [key: string]: unknown;
            } | null;
            /** Started At */
            started_at: number | null;
            /** Status */
            status: string;
            /** Tenant */
            tenant: string;
            /** User Id */
            user_id: string;
        };
        /**
         * JudgeRequest
         * @description Two responses to judge for a user (``context``, ``a`` and ``b``, the names of earlier
         *     versions, are read too).
         */
        JudgeRequest: {
            /**
             * Abstain Below
             * @description abstain (abstained=true) when the preferred side's probability is under this
             */
            abstain_below?: number | null;
            /**
             * Prompt
             * @description the prompt, or the conversation so far
             */
            prompt: string | components["schemas"]["TurnIn"][];
            /**
             * Response A
             * @description response A
             */
            response_a: string;
            /**
             * Response B
             * @description response B
             */
            response_b: string;
        };
        /**
         * PersonaState
         * @description A user's current persona and how far to trust it.
         *
         *     ``prequential_accuracy`` is how often the store's judge was right on this user's pairs
         *     before learning from them (``prequential_judged`` of them; unscored ones count wrong), and
         *     ``confidence`` the lower end of its 95% Wilson interval (None before any judgment).
         *     ``personalization`` says what a judgment uses now: ``persona``, ``memory`` (the raw
         *     preferences, before the first persona) or ``none``.
         */
        PersonaState: {
            /** Confidence */
            confidence: number | null;
            /** Method */
            method?: string | null;
            /** Pairs Learned */
            pairs_learned: number;
            /** Pairs Seen */
            pairs_seen: number;
            /** Pending Job */
            pending_job?: string | null;
            /** Persona */
            persona: string;
            /** Personalization */
            personalization: string;
            /** Prequential Accuracy */
            prequential_accuracy: number | null;
            /** Prequential Judged */
            prequential_judged: number;
            /** Updated */
            updated?: string | null;
            /** User Id */
            user_id: string;
            /** Val Accuracy */
            val_accuracy?: number | null;
            /** Version */
            version: number | null;
        };
        /**
         * PersonaVersion
         * @description One stored persona version: its text, how it was made, what it cost, how it did since.
         */
        PersonaVersion: {
            /** Cost */
            cost: {
                [key: string]: unknown;
            };
            /** Created */
            created: string;
            /** Demos */
            demos: number;
            /** Method */
            method: string;
            /** Persona */
            persona: string;
            /** Preference Ids */
            preference_ids: string[];
            /** Prequential Accuracy */
            prequential_accuracy?: number | null;
            /**
             * Prequential Judged
             * @default 0
             */
            prequential_judged: number;
            /** Reason */
            reason: string;
            /** Val Accuracy */
            val_accuracy: number | null;
            /** Version */
            version: number;
        };
        /**
         * PreferenceIn
         * @description One pairwise choice: the prompt (or the conversation so far) and the two responses.
         */
        PreferenceIn: {
            /** Chosen */
            chosen: string;
            /**
             * Context
             * @description the conversation so far, ending with the user's turn
             */
            context?: components["schemas"]["TurnIn"][] | null;
            /**
             * Conversation Id
             * @description groups the pairs of one conversation (fits never split them across train and validation)
             */
            conversation_id?: string | null;
            /**
             * Id
             * @description the client's id for this preference: a retry with the same id is a no-op (without one, the content is the id)
             */
            id?: string | null;
            /**
             * Prompt
             * @description the user's prompt (or give context)
             */
            prompt?: string | null;
            /** Rejected */
            rejected: string;
        };
        /** PreferenceList */
        PreferenceList: {
            /** Preferences */
            preferences: components["schemas"]["StoredPreference"][];
        };
        /**
         * RankRequest
         * @description Drafts to rank for a user (``context`` is read as ``prompt``, as earlier versions named it).
         */
        RankRequest: {
            /** Candidates */
            candidates: string[];
            /**
             * Prompt
             * @description the prompt, or the conversation so far
             */
            prompt: string | components["schemas"]["TurnIn"][];
        };
        /**
         * Ranking
         * @description Best-of-n: ``order`` lists candidate indices best first; ``scores`` are rewards (reward
         *     model) or wins in a knockout (LLM judge), per candidate; ``comparisons`` judged pairs.
         */
        Ranking: {
            /** Best */
            best: number;
            /** Comparisons */
            comparisons: number;
            /** Order */
            order: number[];
            /** Personalization */
            personalization: string;
            /** Scores */
            scores: number[];
            /** Verdicts */
            verdicts?: components["schemas"]["Verdict"][];
            /** Version */
            version: number | null;
        };
        /**
         * StoredPreference
         * @description A stored preference: its id (the client's, else ``sha256:`` of its content), the
         *     conversation, the two responses.
         */
        StoredPreference: {
            /** Chosen */
            chosen: string;
            /** Context */
            context: {
                [key: string]: string;
            }[];
            /** Conversation Id */
            conversation_id?: string | null;
            /** Id */
            id: string;
            /** Rejected */
            rejected: string;
        };
        /** TurnIn */
        TurnIn: {
            /** Content */
            content: string;
            /**
             * Role
             * @enum {string}
             */
            role: "user" | "assistant" | "system";
        };
        /** UserList */
        UserList: {
            /** Next After */
            next_after: string | null;
            /** Users */
            users: string[];
        };
        Verdict: {
            /** Abstained */
            abstained?: boolean;
            /** Personalization */
            personalization?: string;
            /**
             * Preferred
             * @enum {string}
             */
            preferred: "A" | "B";
            /** Probability */
            probability?: number | null;
            /** Reasoning */
            reasoning: string;
            /** Version */
            version?: number | null;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    healthz_healthz_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    metrics_text_metrics_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Prometheus text format */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description with --private-ops: no token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description with --private-ops: the token lacks the ops scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    readyz_readyz_get: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
            /** @description with --private-ops: no token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description with --private-ops: the token lacks the ops scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description not ready */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    job_v1_jobs__job_id__get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                job_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such job in this tenant */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    list_users_v1_users_get: {
        parameters: {
            query?: {
                limit?: number;
                after?: string | null;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["UserList"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    forget_v1_users__user_id__delete: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Forgotten"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    export_v1_users__user_id__export_get: {
        parameters: {
            query?: {
                version?: number | null;
            };
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        [key: string]: unknown;
                    };
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no persona yet */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    generation_prompt_v1_users__user_id__generation_prompt_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["GenerationPrompt"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    judge_v1_users__user_id__judge_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["JudgeRequest"];
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Verdict"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the judge's model gave no usable answer */
            502: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the judge's model did not answer, or is misconfigured; or the persona store's database is busy, unreachable or not ready; or the judge is at capacity and its queue full, or the request waited too long */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    persona_v1_users__user_id__persona_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PersonaState"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    history_v1_users__user_id__persona_history_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HistoryOut"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    preferences_v1_users__user_id__preferences_get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PreferenceList"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    add_preferences_v1_users__user_id__preferences_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["AddPreferencesRequest"];
            };
        };
        responses: {
            /** @description nothing new: every preference was stored already */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AddResult"];
                };
            };
            /** @description stored; an update job is queued (job_id, Location) */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AddResult"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the store's database is unavailable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
    rank_v1_users__user_id__rank_post: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description the application's user id */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RankRequest"];
            };
        };
        responses: {
            /** @description Successful Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Ranking"];
                };
            };
            /** @description no bearer token, or an unknown, revoked or expired one */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token lacks the scope this needs (the message names it) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description no such user (in this token's tenant) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the body is larger than the service takes */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description a malformed request (the field is named), or one the judge's model refused */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the token's tenant sent more requests a second, or has more in flight, than the service takes */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the judge's model gave no usable answer */
            502: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
            /** @description the judge's model did not answer, or is misconfigured; or the persona store's database is busy, unreachable or not ready; or the judge is at capacity and its queue full, or the request waited too long */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"];
                };
            };
        };
    };
}
