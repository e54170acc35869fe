/* libsako — grocery recommendations from cold start onwards. MIT licence, see LICENSE. */
#ifndef SAKO_H
#define SAKO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @file sako.h
 * The only public header of libsako, and its specification: anything not declared
 * here is not API.
 *
 * An engine (::sako_engine) ranks the products of a categorised catalog for a user
 * by Thompson sampling over Beta posteriors of each product's reward rate. A new or
 * rarely seen product starts from its category's pooled posterior (empirical Bayes,
 * backing off aisle -> department -> whole catalog), so a new yoghurt starts where
 * yoghurts are. Every accepted event is appended to an event log in one SQLite file
 * in the same transaction that updates the stored state; the file is all an engine
 * needs to come back exactly as it was. sako_compact() folds the old part of the
 * log into a checkpoint so that the file stops growing.
 *
 * Caveats
 * - A handle may be shared by threads: sako_recommend() may run concurrently with
 *   itself and with sako_update()/sako_retrain()/sako_compact()/catalog upserts,
 *   which are serialised internally; a reader never sees a half-applied batch.
 *   A retrain and a compaction of one engine exclude each other (::SAKO_BUSY). sako_close()
 *   must not run concurrently with any other call on the same handle.
 * - Do not use a handle across fork(); open a new one in the child.
 * - One engine owns a database file at a time (an advisory lock on "<path>-lock",
 *   a file left in place after close): a second sako_init() on the same file, in
 *   this process or another, gets ::SAKO_BUSY at once. Another SQLite connection
 *   holding the write lock makes a commit wait busy_timeout_ms, then ::SAKO_BUSY.
 * - A fixed seed repeats a single-threaded run within one process. Draws follow
 *   the in-memory item order, which a reopen rebuilds in id order, so after a
 *   reopen the same seed gives other (equally distributed) recommendations unless
 *   items were added in id order.
 * - Ids are integers in [1, ::SAKO_ID_MAX]; 0 means "none" where an id is optional.
 *   The bound keeps ids exact in JSON and in IEEE doubles.
 * - Do not keep database files on network filesystems (SQLite's WAL needs shared
 *   memory between the processes on one host).
 * - The error message of sako_errmsg() is per thread and valid until that thread's
 *   next libsako call.
 */

/* ---------------------------------------------------------------- versions */

#define SAKO_VERSION_MAJOR 0
#define SAKO_VERSION_MINOR 7
#define SAKO_VERSION_PATCH 0
#define SAKO_VERSION_NUMBER \
    (SAKO_VERSION_MAJOR * 10000 + SAKO_VERSION_MINOR * 100 + SAKO_VERSION_PATCH)
#define SAKO_VERSION_STRING "0.7.0"

#if defined(_WIN32)
#define SAKO_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#define SAKO_API __attribute__((visibility("default")))
#else
#define SAKO_API
#endif

/* ------------------------------------------------------------ status codes */

/**
 * Status codes. Every call that can fail returns one of these; SAKO_OK is 0 and
 * failures are negative. Values are stable and never renumbered; new codes may be
 * added, so treat an unknown negative value as ::SAKO_ERROR.
 */
enum sako_status {
    SAKO_OK = 0,        /**< success */
    SAKO_ERROR = -1,    /**< internal error (a bug, or an SQLite failure not listed below) */
    SAKO_NOMEM = -2,    /**< out of memory; nothing was changed */
    SAKO_INVALID = -3,  /**< an argument is invalid (NaN, negative, bad type, duplicate...) */
    SAKO_NOTFOUND = -4, /**< an id names no known item or category */
    SAKO_RANGE = -5,    /**< a size or count exceeds a documented limit */
    SAKO_IO = -6,       /**< the disk failed or is full; the operation was not applied */
    SAKO_CORRUPT = -7,  /**< the file is not a libsako database, or is damaged */
    SAKO_BUSY = -8,     /**< the database is locked by another connection; retry later */
    SAKO_MISUSE = -9,   /**< the library was called wrongly (NULL handle or out-pointer) */
    SAKO_VERSION = -10  /**< the database was written by a newer libsako schema */
};

/* ------------------------------------------------------------------ limits */

#define SAKO_ID_MAX ((int64_t)9007199254740991LL) /**< 2^53 - 1, largest valid id */
#define SAKO_TIME_MAX ((int64_t)253402300799999LL) /**< latest event or item time: 9999-12-31, unix ms */
#define SAKO_MAX_K 1000          /**< largest k sako_recommend() accepts */
#define SAKO_MAX_BATCH 1000000   /**< largest batch of events or catalog entries */
#define SAKO_MAX_EXCLUDE 10000   /**< largest exclude or recent list of a query */
#define SAKO_MAX_NAME 256        /**< longest category name in bytes, without the NUL */
#define SAKO_MAX_DEPTH 8         /**< deepest category chain (department -> aisle is 2) */

/* ------------------------------------------------------------------- types */

/** The engine: opaque, created by sako_init(), destroyed by sako_close(). */
typedef struct sako_engine sako_engine;

/** Kinds of feedback. The reward each kind gives is set in ::sako_options. */
typedef enum sako_event_type {
    SAKO_EVENT_IMPRESSION = 0, /**< the item was shown to the user */
    SAKO_EVENT_CLICK = 1,      /**< the user opened the item */
    SAKO_EVENT_CART = 2,       /**< the user put the item in the basket */
    SAKO_EVENT_PURCHASE = 3    /**< the user bought the item */
} sako_event_type;
#define SAKO_EVENT_TYPES 4

/** How hard a commit tries to reach the disk (each level names what it gives up). */
typedef enum sako_durability {
    /** WAL + synchronous=FULL: an acknowledged batch survives kill -9 and power loss. */
    SAKO_DURABLE_FULL = 0,
    /** WAL + synchronous=NORMAL: survives kill -9; the last batches may roll back
     *  on power loss or OS crash (atomicity and consistency kept, not durability). */
    SAKO_DURABLE_NORMAL = 1,
    /** synchronous=OFF: survives kill -9 only; a power loss may damage the file. */
    SAKO_DURABLE_OFF = 2
} sako_durability;

/** What an event for an item not in the catalog does. */
typedef enum sako_unknown_item {
    /** The whole batch is refused with ::SAKO_NOTFOUND naming the entry (default). */
    SAKO_UNKNOWN_REJECT = 0,
    /** The item is created, active, directly under the catalog root (no category). */
    SAKO_UNKNOWN_CREATE = 1
} sako_unknown_item;

/** Which prior a new item starts from. */
typedef enum sako_prior {
    /** Its category's pooled posterior mean, with prior_strength pseudo-observations
     *  (empirical Bayes, backing off aisle -> department -> catalog). Default. */
    SAKO_PRIOR_CATEGORY = 0,
    /** Beta(1, 1) for every item: the original system, kept for comparisons. */
    SAKO_PRIOR_FLAT = 1
} sako_prior;

/** Engine options. Initialise with ::SAKO_OPTIONS_INIT, then change fields. */
typedef struct sako_options {
    unsigned version;             /**< ::SAKO_OPTIONS_VERSION */
    /* Model. Rewards are finite and in [0, 1e6]; strengths in (0, 1e6].
     * Stored in the database when it is created; on reopen the stored values
     * win unless `reconfigure` is set (posteriors are then recomputed from the
     * stored evidence, which is never lost). */
    double reward_click;          /**< added to a per click (0.7) */
    double reward_cart;           /**< added to a per add-to-cart (0.85) */
    double reward_purchase;       /**< added to a per purchase (1.0) */
    double penalty_impression;    /**< added to b per impression without click (1.0) */
    int prior;                    /**< a ::sako_prior (SAKO_PRIOR_CATEGORY) */
    double prior_strength;        /**< pseudo-observations of an item prior (20.0) */
    double category_shrinkage;    /**< pseudo-observations pulling a category to its parent (20.0) */
    /** Refresh category priors after N events once the log has also grown by 25 %
     *  since the last refresh: every N events at first, geometrically spaced later
     *  (a refresh costs O(catalog)); 0 = only on retrain (1000) */
    uint64_t prior_refresh_events;
    /* Run time. Not stored. */
    uint64_t seed;                /**< RNG seed; 0 picks one from the clock */
    int durability;               /**< a ::sako_durability (SAKO_DURABLE_FULL) */
    int unknown_items;            /**< a ::sako_unknown_item (SAKO_UNKNOWN_REJECT) */
    int busy_timeout_ms;          /**< wait this long for another writer's lock (5000) */
    int reconfigure;              /**< 1: the model fields above replace the stored ones (0) */
    /* Version 2 (0.2): the personal engine. Model fields, stored like the ones above;
     * a version-1 struct gets these defaults, and so does a 0.1 database, except
     * organic_demand, which stays 0 there so that its posteriors do not change.
     * docs/architecture.md ("The personal engine") gives every formula. */
    int organic_demand;           /**< 1: a click, cart or purchase without rec_id is demand,
                                       not a recommendation outcome (1; 0 = the 0.1 rule) */
    uint64_t demand_min_purchases;/**< organic purchases before demand priors replace category
                                       priors (100) */
    int personal;                 /**< 1: users with history get the personal engine (1) */
    uint32_t personal_min_baskets;/**< baskets before a user leaves the population engine (1) */
    double half_life_days;        /**< decay of a user's purchase history, in days (45) */
    double personal_strength;     /**< a0: baskets' worth of prior for each (user, item) (1) */
    double personal_temperature;  /**< draw strength (a0 + W_u) / T; 0 = rank by the posterior
                                       mean, no draw (0: chosen on the replay's tuning split) */
    double due_exponent;          /**< kappa: how hard a product not yet due is held back (0.2) */
    double affinity_strength;     /**< pseudo-purchases shrinking affinity to the population (20) */
    double lift_strength;         /**< pseudo co-occurrences shrinking the lift to 1 (5) */
    int64_t basket_gap_ms;        /**< purchases without order_id further apart start a new
                                       basket (1800000 = 30 min) */
    /* Version 3 (0.3): decay. A model field, stored like the ones above; a version-1
     * or version-2 struct gets 0, and so does a 0.2 database (no decay: its state
     * and posteriors do not change). docs/architecture.md ("Decay") gives the rule. */
    double decay_half_life_days;  /**< half-life of the population evidence, product demand
                                       and bought-together counts, in days of event time;
                                       0 = no decay, else in [1, 1e6] (0) */
    /* Run time, not stored (issue 12): */
    int create_empty;             /**< 1: an existing zero-length file at the path becomes a new
                                       database; 0: it is refused with SAKO_CORRUPT, as a
                                       database truncated to nothing would be (0) */
    /* Version 4 (issue 10): matrix factorisation (implicit ALS, docs/architecture.md,
     * "Matrix factorisation"). Model fields, stored like the ones above, except
     * mf_threads (run time: the factors do not depend on it); a version <= 3 struct
     * and a schema-4 file get these defaults. Off by default (mf_factors 0) until the
     * evaluation shows that the factors help. */
    uint32_t mf_factors;          /**< latent factors per user and item; 0 = no factors,
                                       else 1..1024 (0) */
    uint32_t mf_iterations;       /**< ALS sweeps per retrain, 1..10000 (15) */
    double mf_regularization;     /**< L2 weight on both sides, finite, >= 0 (0.01) */
    double mf_alpha;              /**< confidence c_ui = 1 + alpha r_ui, finite, > 0 (1.0) */
    uint32_t mf_cg_steps;         /**< conjugate-gradient steps per row, 1..mf_factors (3) */
    uint32_t mf_threads;          /**< training threads, 0 = online cores, else 1..256;
                                       run time, not stored (0) */
    uint64_t mf_seed;             /**< initial factors; 0 = the solver's fixed default (0) */
    int mf_mode;                  /**< a ::sako_mf_mode: when the factors are served
                                       (SAKO_MF_AUTO) */
    uint32_t mf_min_users;        /**< auto: users in the last training before the
                                       platform is served factors, 1..1e9 (100) */
    uint32_t mf_min_user_items;   /**< auto: distinct products a user interacted with before
                                       that user is served factors, 1..1e6 (3) */
    double mf_weight;             /**< exponent of the factor signal in the personal
                                       posterior of products new to the user (the
                                       user's own are left to their history),
                                       finite, in [0, 10] (1.0) */
    uint32_t mf_candidates;       /**< products retrieved by factor score per query,
                                       0..10000 (200) */
    /* Version 5 (issue 10, serving speed): run time, not stored; a version <= 4 struct
     * gets the default. */
    uint32_t mf_probe;            /**< lists of the factor index a query may scan, 0..4096;
                                       0 = the index's default, 1/32 of its lists
                                       clipped to [8, 64] (0). docs/c-api.md */
} sako_options;

/** When the personal engine uses the factors (::sako_options.mf_mode). */
typedef enum sako_mf_mode {
    SAKO_MF_AUTO = 0,  /**< once the platform (mf_min_users) and the user (mf_min_user_items)
                            have enough data */
    SAKO_MF_OFF = 1,   /**< never (the factors are still trained when mf_factors > 0) */
    SAKO_MF_ON = 2     /**< for every user with history, whenever factors exist */
} sako_mf_mode;

#define SAKO_OPTIONS_VERSION 5
#define SAKO_OPTIONS_INIT \
    { SAKO_OPTIONS_VERSION, 0.7, 0.85, 1.0, 1.0, SAKO_PRIOR_CATEGORY, 20.0, 20.0, 1000, \
      0, SAKO_DURABLE_FULL, SAKO_UNKNOWN_REJECT, 5000, 0, \
      1, 100, 1, 1, 45.0, 1.0, 0.0, 0.2, 20.0, 5.0, 1800000, 0.0, 0, \
      0, 15, 0.01, 1.0, 3, 0, 0, SAKO_MF_AUTO, 100, 3, 1.0, 200, 0 }

/** A category of products: a department (no parent) or an aisle (parent = department). */
typedef struct sako_category {
    int64_t id;         /**< in [1, SAKO_ID_MAX] */
    int64_t parent_id;  /**< 0 for none, else an existing category or one earlier in the batch */
    const char *name;   /**< UTF-8, at most SAKO_MAX_NAME bytes; NULL keeps the stored name */
} sako_category;

/** A product. Inactive items (out of stock, delisted) are never recommended. */
typedef struct sako_item {
    int64_t id;          /**< in [1, SAKO_ID_MAX] */
    int64_t category_id; /**< 0 for none (catalog root), else a known category */
    int active;          /**< 1 recommendable, 0 not */
    int64_t added_at;    /**< time added, unix milliseconds up to year 9999; 0 = now */
} sako_item;

/** One piece of feedback. */
typedef struct sako_event {
    int64_t user_id;     /**< in [1, SAKO_ID_MAX]; unknown users are created */
    int64_t item_id;     /**< a catalog item (see ::sako_unknown_item) */
    int type;            /**< a ::sako_event_type */
    int64_t time;        /**< unix milliseconds up to year 9999; 0 = now; out of order is accepted */
    int64_t rec_id;      /**< the recommendation it answers, 0 for none */
} sako_event;

/** What to recommend. Initialise with ::SAKO_QUERY_INIT. */
typedef struct sako_query {
    unsigned version;        /**< ::SAKO_QUERY_VERSION */
    int64_t user_id;         /**< in [1, SAKO_ID_MAX], or 0 for an anonymous user */
    int k;                   /**< results wanted, 0..SAKO_MAX_K */
    int64_t category_id;     /**< 0 for the whole catalog, else a category (subtree) */
    const int64_t *exclude;  /**< items never to return (unknown ids are ignored) */
    size_t n_exclude;        /**< at most SAKO_MAX_EXCLUDE */
    const int64_t *recent;   /**< items the user just viewed or added, newest first: their
                                  bought-together partners become candidates (unknown ids ignored) */
    size_t n_recent;         /**< at most SAKO_MAX_EXCLUDE */
    /* Version 2 (0.2). */
    int mode;                /**< a ::sako_mode (SAKO_MODE_MIXED) */
    int64_t time;            /**< when the recommendation is for, unix ms up to year 9999
                                  (0 = now): decay and due-ness are measured to it */
} sako_query;

/** What a personal query returns (a user without history gets the population engine
 *  in every mode, except that `repeat` then returns nothing). */
typedef enum sako_mode {
    SAKO_MODE_MIXED = 0,    /**< everything: repeat purchases and new products (default) */
    SAKO_MODE_REPEAT = 1,   /**< only products the user bought before: a "buy it again" shelf */
    SAKO_MODE_DISCOVER = 2  /**< only products the user never bought */
} sako_mode;
#define SAKO_MODES 3

#define SAKO_QUERY_VERSION 2
#define SAKO_QUERY_INIT { SAKO_QUERY_VERSION, 0, 20, 0, NULL, 0, NULL, 0, SAKO_MODE_MIXED, 0 }

/** Which part of the model produced a recommendation. */
typedef enum sako_source {
    SAKO_SOURCE_THOMPSON = 1,   /**< the population engine: a draw from the item's Beta posterior */
    SAKO_SOURCE_REPEAT = 2,     /**< personal: the user's own purchase history weighed most */
    SAKO_SOURCE_AFFINITY = 3,   /**< personal: the user's category affinity lifted it most */
    SAKO_SOURCE_COPURCHASE = 4, /**< personal: bought together with the latest basket or `recent` */
    SAKO_SOURCE_DEMAND = 5,     /**< personal: its population demand, for a user who never bought it */
    SAKO_SOURCE_MF = 6          /**< personal: the user's and the product's latent factors lifted it most */
} sako_source;
#define SAKO_SOURCES 7

/** One recommended item. */
typedef struct sako_rec {
    int64_t item_id;
    double score;   /**< the sampled rate, in [0, 1] (population: reward per impression;
                         personal: purchase per basket); results are sorted by it, descending */
    int source;     /**< a ::sako_source */
} sako_rec;

/** An item's evidence and posterior. */
typedef struct sako_item_info {
    int64_t id;
    int64_t category_id;
    int active;
    int64_t added_at;        /**< unix ms */
    int64_t last_event_at;   /**< unix ms of its newest event, 0 if none */
    double impressions, clicks, carts, purchases; /**< event counts (with decay: decayed
                                                       to the current prior epoch's time) */
    double prior_mean;       /**< mean of the prior it starts from */
    double alpha, beta;      /**< the Beta posterior sampled by sako_recommend() */
} sako_item_info;

/** Engine-wide figures. */
typedef struct sako_stats {
    uint64_t n_items;           /**< items in the catalog */
    uint64_t n_active_items;    /**< of which recommendable */
    uint64_t n_categories;
    uint64_t n_users;           /**< users seen in events */
    uint64_t n_events;          /**< events in the log */
    uint64_t events_since_refresh; /**< events since the category priors were last refreshed */
    int64_t model_version;      /**< increases with every retrain (0 before the first): the
                                     newest version built, rejected ones included; the one
                                     served is sako_version_get(engine, 0, ...) */
    double global_mean;         /**< the catalog's prior mean (A+1)/(A+B+2) as of the last refresh */
} sako_stats;

/** A user's personal state (sako_user_get()). */
typedef struct sako_user_info {
    int64_t id;
    uint64_t n_events;       /**< events of this user in the log */
    int64_t last_event_at;   /**< unix ms of the newest */
    uint64_t n_baskets;      /**< baskets (orders) the user bought in */
    uint64_t n_products;     /**< distinct products the user bought */
    double weight;           /**< W_u: the decayed number of baskets, as of last_basket_at */
    int64_t last_basket_at;  /**< unix ms of the start of the latest basket, 0 if none */
    int personal;            /**< 1 if the personal engine serves this user */
} sako_user_info;

/** One product of a user's history (sako_user_item_get()). */
typedef struct sako_user_item {
    int64_t item_id;
    uint64_t n_baskets;      /**< baskets of this user that held it */
    double weight;           /**< n_uj: decayed count of those baskets, as of last_bought_at */
    int64_t last_bought_at;  /**< unix ms */
    double mean_gap_days;    /**< the user's mean repurchase interval, 0 with one basket */
} sako_user_item;

/* Retrain policy (0.3, issue 9): when a retrain is due. */

/** What triggers a retrain (bits of ::sako_retrain_status.reasons). */
typedef enum sako_retrain_reason {
    SAKO_RETRAIN_EVENTS = 1, /**< every_events events since the last retrain */
    SAKO_RETRAIN_TIME = 2,   /**< every_seconds seconds since the last retrain */
    SAKO_RETRAIN_DRIFT = 4,  /**< the conversion of served recommendations dropped */
    SAKO_RETRAIN_MANUAL = 8  /**< asked for by hand (sako_retrain(); since 0.4) */
} sako_retrain_reason;

/** The fraction the default drift sample is sized for (see ::SAKO_POLICY_INIT). */
#define SAKO_POLICY_DRIFT_FRACTION 0.8

/**
 * The retrain policy: set in advance by the operator, stored in the database, read
 * by sako_retrain_due(). Any combination of the triggers may be on; all off is the
 * default (retrains happen only when asked for). Initialise with ::SAKO_POLICY_INIT.
 *
 * Drift is measured on served recommendations only (events with a rec_id): the
 * conversion is the reward-weighted clicks, carts and purchases (weighted with the
 * model's rewards, as the bandit weighs them) per rec-attributed impression. The
 * baseline is the first drift_window such impressions after the last retrain; the
 * recent conversion is over the latest drift_window impressions after the baseline
 * (in 16 buckets, so between 15/16 and all of the window). Drift is due when both
 * samples hold at least drift_min_impressions and recent < drift_fraction x baseline.
 * The default minimum, 12,500, keeps the probability of a false trigger per check
 * below 3e-5 (4 standard errors) at the default fraction 0.8 for a conversion of
 * 5 % or more (docs/architecture.md, "Retrain policy"); a lower conversion needs a
 * larger minimum.
 */
typedef struct sako_policy {
    unsigned version;               /**< ::SAKO_POLICY_VERSION */
    uint64_t every_events;          /**< events since the last retrain; 0 = off (0) */
    uint64_t every_seconds;         /**< seconds since the last retrain; 0 = off (0) */
    double drift_fraction;          /**< in [0, 1): recent below this x baseline; 0 = off (0) */
    uint64_t drift_window;          /**< rec-attributed impressions per window (25000) */
    uint64_t drift_min_impressions; /**< least sample of baseline and recent, 1..window (12500) */
    /* Version 2 (0.4): model versions and their gate (docs/architecture.md, "Model
     * versions"). A version-1 struct given to sako_policy_set() leaves these as they
     * are; sako_policy_get() fills them only for a version-2 struct. */
    double gate_margin;             /**< a candidate is rejected when its NDCG@20 on the
                                         holdout is below the active version's minus this,
                                         in [0, 1]; 1 = finiteness only (0.01) */
    uint64_t gate_holdout_events;   /**< most events held out (the newest of the log) (50000) */
    double gate_holdout_fraction;   /**< share of the log held out, at most the above, in
                                         [0, 0.5]; 0 = no holdout, finiteness only (0.05) */
    uint64_t gate_min_baskets;      /**< fewer scored baskets: finiteness only (200) */
    uint64_t keep_versions;         /**< versions kept, newest first; the active and the
                                         pinned ones are never deleted; 1..10000 (10) */
} sako_policy;

#define SAKO_POLICY_VERSION 2
#define SAKO_POLICY_INIT \
    { SAKO_POLICY_VERSION, 0, 0, 0.0, 25000, 12500, 0.01, 50000, 0.05, 200, 10 }
/** Largest every_events, every_seconds and drift_window. */
#define SAKO_POLICY_MAX ((uint64_t)9007199254740991ULL)

/** Whether a retrain is due and why (sako_retrain_due()). "Since" counts from the
 *  last retrain that built a version (0.4: activated or not) or the last activation,
 *  or from the file's creation (or upgrade to 0.3) before. */
typedef struct sako_retrain_status {
    int due;                       /**< 1 if any trigger of the policy fired */
    unsigned reasons;              /**< ::sako_retrain_reason bits of the triggers that fired */
    const char *reason;            /**< static text: "events", "time, drift"... or "not due" */
    uint64_t events_since;         /**< events logged since the last retrain */
    double seconds_since;          /**< wall-clock seconds since it */
    int64_t retrained_at;          /**< unix ms of it */
    double baseline_conversion;    /**< weighted successes per impression in the baseline */
    uint64_t baseline_impressions; /**< its sample: rec-attributed impressions */
    double recent_conversion;      /**< the same over the recent window */
    uint64_t recent_impressions;   /**< its sample */
} sako_retrain_status;

/* Model versions (0.4, issue 9): what a retrain fits, kept, gated and rolled back. */

/** Where a model version stands (::sako_version_info.status). */
typedef enum sako_model_status {
    SAKO_MODEL_ACTIVE = 1,   /**< served now (exactly one version, once any exists) */
    SAKO_MODEL_INACTIVE = 2, /**< passed its gate (or was replaced): may be activated */
    SAKO_MODEL_REJECTED = 3  /**< failed its gate: kept for the record, never activated */
} sako_model_status;

/** Longest gate verdict, with its NUL. */
#define SAKO_VERDICT_MAX 200

/**
 * One model version: the population model a retrain fitted from the log (category
 * priors and the catalog's mean, the product-demand constants), the parameters it
 * was fitted with, the part of the log it saw, and what its gate found. The event
 * counts and the personal histories are the log's, shared by every version.
 */
typedef struct sako_version_info {
    int64_t version;            /**< 1, 2, ... in the order retrains built them */
    int64_t created_at;         /**< unix ms (wall clock) */
    int status;                 /**< a ::sako_model_status */
    int pinned;                 /**< 1: automatic retrains do not replace it while active,
                                     and it is never deleted */
    unsigned reasons;           /**< ::sako_retrain_reason bits of what asked for it */
    char verdict[SAKO_VERDICT_MAX]; /**< the gate's verdict, e.g. "passed: NDCG@20 0.213 vs
                                     0.209 (margin 0.01, 812 baskets)", "rejected: ..." */
    int64_t first_batch, last_batch; /**< the log it was fitted on (batches), 0 if empty */
    uint64_t n_events;          /**< events in the log up to last_batch */
    int64_t champion;           /**< the active version it was compared with, 0 if none */
    int scored;                 /**< 1 if the holdout was scored (else finiteness only) */
    double score;               /**< its NDCG@20 on the holdout (0 if not scored) */
    double champion_score;      /**< the champion's on the same holdout */
    uint64_t holdout_events;    /**< events in the holdout */
    uint64_t holdout_baskets;   /**< baskets scored in it */
    double root_mean;           /**< its catalog prior mean */
    int64_t epoch_at;           /**< the log's latest event time it was fitted at (unix ms) */
    sako_options options;       /**< the model fields it was fitted with (run-time fields 0) */
} sako_version_info;

/* ------------------------------------------------------------------ engine */

/**
 * Open or create an engine on a database file.
 *
 * @param[out] out   the new engine; set to NULL on failure
 * @param[in]  path  a file path (created if missing), or NULL / ":memory:" for a
 *                   private in-memory database (nothing persists); "" is refused
 * @param[in]  opts  options, or NULL for the defaults
 * @return SAKO_OK; SAKO_MISUSE if out is NULL; SAKO_INVALID for bad options, an
 *         empty path, or a reconfigure of half_life_days, basket_gap_ms or
 *         decay_half_life_days on a compacted file (sako_compact()); SAKO_CORRUPT if
 *         the file is not a libsako database (another application's SQLite file
 *         included) or is damaged (a checksum of the log, a checkpoint row or the log
 *         checkpoint does not match: the message names it), or has zero length and
 *         opts->create_empty is 0; SAKO_VERSION if its schema is newer than this
 *         library; SAKO_IO if it cannot be opened or created, or this process may
 *         not write it (a read-only file is refused here, not at the first write);
 *         SAKO_BUSY if locked; SAKO_NOMEM.
 * @note A refused file is left as it was: another application's file is identified
 *       from its header before SQLite opens it (or, when only its -wal can tell, on a
 *       connection that does not checkpoint on close), and the "<path>-lock" file
 *       this call created is removed, as is a database file it created (a failure
 *       after creating one, e.g. SAKO_NOMEM or SAKO_IO, leaves nothing behind, so a
 *       retry creates it again). Release the engine with sako_close().
 *       @since 0.1 (0.3: empty path, zero-length and read-only files refused)
 */
SAKO_API int sako_init(sako_engine **out, const char *path, const sako_options *opts);

/**
 * Close an engine and free everything it holds. Acknowledged events are already on
 * disk, so there is nothing to flush. NULL is a harmless no-op.
 * @note Must not run concurrently with any other call on the handle. @since 0.1
 */
SAKO_API void sako_close(sako_engine *engine);

/* ----------------------------------------------------------------- catalog */

/**
 * Insert or update categories, atomically.
 *
 * A parent must exist already or appear earlier in the batch; a change of parent
 * that would make a cycle or exceed SAKO_MAX_DEPTH is refused.
 * @return SAKO_OK; SAKO_MISUSE (NULL engine, or NULL cats with n > 0);
 *         SAKO_INVALID (id out of range, duplicate id, bad name, cycle, too deep);
 *         SAKO_NOTFOUND (unknown parent); SAKO_RANGE (n > SAKO_MAX_BATCH);
 *         SAKO_IO, SAKO_BUSY, SAKO_NOMEM. On failure nothing is applied and
 *         sako_errmsg() names the entry's index and the reason.
 * @since 0.1
 */
SAKO_API int sako_categories_upsert(sako_engine *engine, const sako_category *cats, size_t n);

/**
 * Insert or update items, atomically. A new item starts with no evidence (its
 * posterior is its category's prior); an existing item keeps its evidence when its
 * category or active flag changes.
 * @return as sako_categories_upsert(); SAKO_NOTFOUND for an unknown category.
 * @since 0.1
 */
SAKO_API int sako_items_upsert(sako_engine *engine, const sako_item *items, size_t n);

/* ------------------------------------------------------------------ events */

/**
 * Record a batch of feedback events and apply them to the model at once.
 *
 * Rewards: an item's posterior is Beta(a, b) with
 * a = prior_a + reward_click*clicks + reward_cart*carts + reward_purchase*purchases,
 * b = prior_b + penalty_impression*max(0, impressions - clicks): an impression that
 * was followed by a click counts as the click, not as a miss (the original rule).
 * The batch is validated whole first; one bad entry rejects it all, and the
 * message names the entry's index and the reason. When this returns SAKO_OK the
 * events are in the log and, with SAKO_DURABLE_FULL, on stable storage.
 * @param[in] events  n events; NULL allowed only when n is 0 (a no-op)
 * @return SAKO_OK; SAKO_MISUSE; SAKO_INVALID (bad id, type or time);
 *         SAKO_NOTFOUND (unknown item under SAKO_UNKNOWN_REJECT);
 *         SAKO_RANGE (n > SAKO_MAX_BATCH); SAKO_IO; SAKO_BUSY; SAKO_NOMEM.
 * @since 0.1
 */
SAKO_API int sako_update(sako_engine *engine, const sako_event *events, size_t n);

/**
 * sako_update() with the order each purchase belongs to. A basket is the purchases of
 * one order: order_ids[i] (0 = none) groups a user's purchases; a user's purchases
 * without an order id form one basket until basket_gap_ms passes between two of them.
 * Baskets feed the personal engine (repeat counts, bought-together pairs).
 * @param[in] order_ids  n ids in [0, SAKO_ID_MAX], or NULL (same as sako_update())
 * @return as sako_update(); SAKO_INVALID names a bad order id.
 * @since 0.2
 */
SAKO_API int sako_update_orders(sako_engine *engine, const sako_event *events,
                                const int64_t *order_ids, size_t n);

/* --------------------------------------------------------------- recommend */

/**
 * Recommend up to q->k items: the top k of one joint Thompson draw over the active
 * items of the catalog (or of q->category_id and its sub-categories), minus
 * q->exclude. Fewer than k eligible items gives all of them.
 *
 * @param[out] out    caller-owned array of capacity cap (>= q->k)
 * @param[out] n_out  number of results written
 * @return SAKO_OK; SAKO_MISUSE (NULL engine, q, n_out, or out with cap > 0, or a
 *         NULL exclude/recent list with a non-zero length);
 *         SAKO_INVALID (k < 0, bad id, wrong query version); SAKO_RANGE
 *         (k > SAKO_MAX_K, cap < k, too long a list) — checked before any work;
 *         SAKO_NOTFOUND (unknown category).
 * @note Thread-safe; allocates nothing per call in the steady state. @since 0.1
 */
SAKO_API int sako_recommend(sako_engine *engine, const sako_query *q, sako_rec *out,
                            size_t cap, size_t *n_out);

/* ----------------------------------------------------------------- retrain */

/**
 * Rebuild the model from the event log: every item's evidence and every category
 * prior is recomputed, then swapped in atomically while recommendations go on.
 * The result equals the online state after a prior refresh, bit for bit.
 * On a database file the rebuild holds no lock that updates or recommendations
 * wait for (since 0.3): it rebuilds the model of the last batch logged when it
 * started, and the batches acknowledged meanwhile reach the new model before it is
 * swapped in (the result is that of a retrain run at its start followed by those
 * batches). An in-memory database retrains while updates wait.
 * Since 0.4 the result is a model version, gated before it is activated (see
 * sako_retrain_v2(); this is sako_retrain_v2(engine, SAKO_RETRAIN_MANUAL)): a
 * rejected version leaves the active one in place and still returns SAKO_OK.
 * @return SAKO_OK; SAKO_MISUSE; SAKO_IO; SAKO_BUSY (also when another
 *         sako_retrain() of this engine is running: nothing was done); SAKO_NOMEM;
 *         SAKO_CORRUPT if the log names items that no longer exist.
 * @since 0.1
 */
SAKO_API int sako_retrain(sako_engine *engine);

/**
 * sako_retrain() saying what asked for it: `reasons` is ::sako_retrain_reason bits
 * (the service's background task passes sako_retrain_due()'s reasons;
 * sako_retrain() is this with ::SAKO_RETRAIN_MANUAL). They are recorded with the
 * version and decide one thing: while the active version is pinned, a retrain
 * without the MANUAL bit builds and records its version (inactive, verdict "active
 * version pinned") but does not activate it.
 *
 * Every retrain builds a new version and gates it (docs/architecture.md, "Model
 * versions"): it must be finite everywhere, and a candidate fitted on the log up to
 * the holdout (the newest min(gate_holdout_events, gate_holdout_fraction x log)
 * events) must score an NDCG@20 on the holdout's baskets no worse than the active
 * version's minus gate_margin; if it passes, the version fitted on the whole log is
 * activated atomically. A rejected version is recorded with its reason and the
 * active one stays: that is still SAKO_OK (the retrain did its job); read the
 * outcome with sako_retrain_result().
 * @param[in] reasons  ::sako_retrain_reason bits, not 0
 * @return as sako_retrain(); SAKO_INVALID for 0 or unknown bits.
 * @since 0.4
 */
SAKO_API int sako_retrain_v2(sako_engine *engine, unsigned reasons);

/**
 * The version the last retrain of this handle built (since it was opened): its
 * number, whether it was activated (status) and the gate's verdict.
 * @param[out] out  the version
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or out); SAKO_NOTFOUND (no retrain yet,
 *         or its version was deleted since by keep_versions); SAKO_IO; SAKO_CORRUPT.
 * @note Serialised with the writers (waits for a retrain's last step). @since 0.4
 */
SAKO_API int sako_retrain_result(sako_engine *engine, sako_version_info *out);

/**
 * The stored model versions, newest first.
 * @param[out] out    caller-owned array of capacity cap (may be NULL when cap is 0)
 * @param[out] n_out  versions written (at most cap)
 * @param[out] total_out  versions stored (may be NULL): call with cap 0 to size
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or n_out, or NULL out with cap > 0);
 *         SAKO_IO; SAKO_CORRUPT.
 * @note Serialised with the writers. @since 0.4
 */
SAKO_API int sako_versions_list(sako_engine *engine, sako_version_info *out, size_t cap,
                                size_t *n_out, size_t *total_out);

/**
 * One model version; version 0 names the active one.
 * @return SAKO_OK; SAKO_MISUSE; SAKO_INVALID (negative version); SAKO_NOTFOUND (no
 *         such version, or version 0 before any retrain); SAKO_IO; SAKO_CORRUPT.
 * @since 0.4
 */
SAKO_API int sako_version_get(sako_engine *engine, int64_t version, sako_version_info *out);

/**
 * Activate a stored version (a rollback, or a version a pinned retrain left
 * inactive): its fitted population model replaces the served one atomically, as a
 * retrain's does, and the file records it, so a reopen serves it. The event counts
 * and personal state stay (they are the log). While the active version is not the
 * newest one (a rollback, a version kept back by a pin, a rejected one), or is
 * pinned, the automatic prior refreshes are held back (they would refit the priors
 * and serve what was turned down); a retrain that activates its version ends that.
 * The retrain policy's counters restart.
 * @return SAKO_OK (also when it is already active: nothing changes); SAKO_MISUSE;
 *         SAKO_INVALID (version < 1, or a rejected version: the message gives its
 *         verdict); SAKO_NOTFOUND (no such version); SAKO_CORRUPT (its stored model
 *         fails its checksum: nothing changes); SAKO_BUSY (a retrain is running:
 *         retry after it); SAKO_IO; SAKO_NOMEM.
 * @note Serialised with the writers; recommendations go on meanwhile. @since 0.4
 */
SAKO_API int sako_version_activate(sako_engine *engine, int64_t version);

/**
 * Pin or unpin a version. A pinned version is never deleted by keep_versions, and
 * while it is active, automatic retrains record their versions without activating
 * them (and prior refreshes are held back). Pinning a rejected version is allowed
 * (to keep it for study).
 * @return SAKO_OK; SAKO_MISUSE; SAKO_INVALID (version < 1, pinned not 0 or 1);
 *         SAKO_NOTFOUND; SAKO_IO; SAKO_BUSY.
 * @since 0.4
 */
SAKO_API int sako_version_pin(sako_engine *engine, int64_t version, int pinned);

/**
 * Set the retrain policy. It is validated whole, then stored in the database (it
 * survives a reopen) and in force at once; a changed drift_window rebuilds the
 * drift counters from the log since the last retrain.
 * @param[in] policy  initialised with ::SAKO_POLICY_INIT; copied, not kept
 * A version-1 struct (0.3) is accepted: its fields are set and the version-2 ones
 * (the gate's, keep_versions) keep their values.
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or policy); SAKO_INVALID (version not 1
 *         or 2, drift_fraction not in [0, 1), a count above ::SAKO_POLICY_MAX,
 *         drift_window 0, drift_min_impressions 0 or above drift_window, gate_margin
 *         not in [0, 1], gate_holdout_fraction not in [0, 0.5], keep_versions not in
 *         [1, 10000]), nothing changed; SAKO_IO, SAKO_BUSY, SAKO_NOMEM.
 * @note Serialised with sako_update() and sako_retrain(). @since 0.3 (0.4: version 2)
 */
SAKO_API int sako_policy_set(sako_engine *engine, const sako_policy *policy);

/**
 * The retrain policy in force. Set out->version to ::SAKO_POLICY_VERSION first (or
 * initialise with ::SAKO_POLICY_INIT) to get every field; any other value gets the
 * version-1 fields only (written up to drift_min_impressions), so code built against
 * 0.3 keeps working.
 * @param[out] out  the policy
 * @return SAKO_OK or SAKO_MISUSE. @note Thread-safe. @since 0.3
 */
SAKO_API int sako_policy_get(sako_engine *engine, sako_policy *out);

/**
 * Whether the policy says a retrain is due, why, and the counters behind it. The
 * engine never retrains by itself: the caller (the service's background task) runs
 * sako_retrain() when `due` is 1, which resets the counters. O(1).
 * @param[out] out  the status; out->reason is a static string
 * @return SAKO_OK or SAKO_MISUSE. @note Thread-safe. @since 0.3
 */
SAKO_API int sako_retrain_due(sako_engine *engine, sako_retrain_status *out);

/* ------------------------------------------------- the engine's factors */

/** The matrix factors the engine serves (sako_factors_info_get()): the last training's
 *  parameters and the log it saw. Set `version` to ::SAKO_FACTORS_INFO_VERSION. */
typedef struct sako_factors_info {
    unsigned version;          /**< ::SAKO_FACTORS_INFO_VERSION */
    uint32_t factors;          /**< latent factors of the training; 0: none trained */
    uint32_t iterations, cg_steps;
    double regularization, alpha;
    uint64_t seed;
    int64_t trained_at;        /**< wall clock of the training, unix ms */
    int64_t first_batch, last_batch; /**< the range of the event log it saw */
    uint64_t n_events;         /**< events logged up to last_batch */
    uint64_t n_users;          /**< users with a trained vector */
    uint64_t n_items;          /**< products with a trained vector */
    uint64_t n_folded;         /**< users folded in since (interacted after the training) */
    uint64_t index_lists;      /**< lists of the retrieval index */
    uint64_t bytes;            /**< memory of the factors, the index and the fold-in cache */
    double train_seconds;      /**< the training's wall time in this process (0 after a reopen) */
    int serving;               /**< 1: mf_mode is not off and the platform threshold is met */
} sako_factors_info;
#define SAKO_FACTORS_INFO_VERSION 1

/**
 * The factors the engine serves: what trained them and on which part of the log.
 * @param[in,out] out  out->version = SAKO_FACTORS_INFO_VERSION; filled (factors 0 when
 *                     no training has run with mf_factors > 0)
 * @return SAKO_OK; SAKO_MISUSE (NULL); SAKO_INVALID (wrong version). @note Thread-safe.
 * @since 0.5
 */
SAKO_API int sako_factors_info_get(sako_engine *engine, sako_factors_info *out);

/**
 * One user's or one product's latent vector as served: a product's from the last
 * training; a user's from it while the user has not interacted since, else solved
 * exactly from the user's full history against the item factors (fold-in, cached).
 * @param[in]  user_id, item_id  exactly one of them non-zero
 * @param[out] out   cap floats; *n_out = the factor count (0: no vector)
 * @return SAKO_OK; SAKO_MISUSE (NULL); SAKO_INVALID (bad ids, both or neither);
 *         SAKO_NOTFOUND (unknown user or item); SAKO_RANGE (cap below the factor
 *         count); SAKO_NOMEM. @note Thread-safe. @since 0.5
 */
SAKO_API int sako_factors_vector(sako_engine *engine, int64_t user_id, int64_t item_id,
                                 float *out, size_t cap, size_t *n_out);

/* ----------------------------------------------------------- introspection */

/** Evidence and posterior of one item. @return SAKO_OK, SAKO_MISUSE, SAKO_INVALID,
 *  SAKO_NOTFOUND. @since 0.1 */
SAKO_API int sako_item_get(sako_engine *engine, int64_t item_id, sako_item_info *out);

/** A user's personal state. @return SAKO_OK, SAKO_MISUSE, SAKO_INVALID, SAKO_NOTFOUND
 *  (a user with no events). @since 0.2 */
SAKO_API int sako_user_get(sako_engine *engine, int64_t user_id, sako_user_info *out);

/** One product of a user's purchase history. @return SAKO_OK, SAKO_MISUSE, SAKO_INVALID,
 *  SAKO_NOTFOUND (unknown user, or the user never bought it). @since 0.2 */
SAKO_API int sako_user_item_get(sako_engine *engine, int64_t user_id, int64_t item_id,
                                sako_user_item *out);

/** Mean of the prior an item of this category starts from (0 = catalog root).
 *  @return SAKO_OK, SAKO_MISUSE, SAKO_INVALID, SAKO_NOTFOUND. @since 0.1 */
SAKO_API int sako_category_prior(sako_engine *engine, int64_t category_id, double *mean_out);

/** Engine-wide figures. @return SAKO_OK or SAKO_MISUSE. @since 0.1 */
SAKO_API int sako_stats_get(sako_engine *engine, sako_stats *out);

/** The options in force: the model fields as stored in the database, the run-time
 *  fields as given to sako_init() (seed as actually used). Set out->version to
 *  SAKO_OPTIONS_VERSION first (or initialise with SAKO_OPTIONS_INIT) to get every
 *  field; version 4 gets the fields up to mf_candidates, version 3 up to
 *  create_empty, version 2 up to basket_gap_ms, any other value the version-1 fields
 *  only, so code built against an older header keeps working.
 *  @return SAKO_OK or SAKO_MISUSE. @since 0.1 */
SAKO_API int sako_options_get(sako_engine *engine, sako_options *out);

/**
 * Whether the engine serves at full speed: its model is loaded (always true once
 * sako_init() has returned) and the samplers of its sampling domains are built. A
 * catalog of more than 100,000 items gets its samplers from a background thread
 * after sako_init() returns; until then sako_recommend() answers exactly but by
 * brute force. A service can use this as its readiness.
 * @param[out] ready_out  1 when ready, else 0
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or ready_out).
 * @note Thread-safe. @since 0.3
 */
SAKO_API int sako_ready(sako_engine *engine, int *ready_out);

/** What sako_verify() checked. */
typedef struct sako_verify_report {
    uint64_t n_batches;     /**< event batches in the log */
    uint64_t n_checksummed; /**< of them with a checksum (all verified); batches logged
                                 before 0.3 have none */
    uint64_t n_events;      /**< events in the batches read */
    int64_t compact_batch;  /**< the log checkpoint's batch (0: never compacted; @since 0.4) */
    uint64_t n_checkpoint_chunks; /**< its chunks (all verified; @since 0.4) */
} sako_verify_report;

/**
 * Check a database file without changing it: SQLite's integrity_check, then every
 * event batch of the log against the CRC-32C written with it (and decoded), then
 * (0.4) every row of the regular checkpoint (items, users, categories), every model
 * version's stored model and every chunk of the log checkpoint a compaction left
 * (sako_compact()) against theirs. For
 * operators and backups (`sako verify PATH`). A file no engine has open is read
 * under its lock, creating no -wal or -shm; a file an engine has open is read
 * through its WAL like any reader (a consistent snapshot).
 * @param[in]  path  a database file
 * @param[out] out   counts of what was checked (filled also on failure, up to it)
 * @return SAKO_OK; SAKO_MISUSE (NULL path or out); SAKO_INVALID (empty path or
 *         ":memory:"); SAKO_CORRUPT (not a libsako file, integrity_check failed, a
 *         batch is damaged: the message names its seq, a model version: the message
 *         names it, or a chunk of the log checkpoint: the message names its part and
 *         number); SAKO_VERSION (newer schema);
 *         SAKO_IO; SAKO_NOMEM.
 * @note Thread-safe. Opens its own read-only connection. @since 0.3
 */
SAKO_API int sako_verify(const char *path, sako_verify_report *out);

/* ------------------------------------------------------------------ backup */

/**
 * Copy the engine's database into a new file while it keeps serving (SQLite's
 * online backup API, through the engine's own connection).
 *
 * The copy goes a few pages at a time (64), each step holding the writer mutex
 * for that step only: sako_update() and the other writers wait at most one step,
 * sako_recommend() never waits. The copy ends at one instant, under the writer
 * mutex: the backup holds every batch acknowledged before that instant and none
 * after it, and opening it with sako_init() gives the engine's state at that
 * instant (posteriors, users, personal state). Works for in-memory engines too.
 * The pages go to "<path>.partial-XXXXXX" first, which is synced and linked to
 * `path` only when complete; `path` is never overwritten.
 * @param[in] path  the backup file to create; must not exist
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or path); SAKO_INVALID (path empty,
 *         ":memory:", or an existing file, which is left alone); SAKO_IO (the
 *         directory is missing or not writable, the disk is full); SAKO_BUSY (another
 *         connection held the database for more than ~5 s); SAKO_NOMEM. On failure
 *         no file is left at `path`.
 * @note Thread-safe; may run concurrently with every call but sako_close(). @since 0.3
 */
SAKO_API int sako_backup(sako_engine *engine, const char *path);

/* -------------------------------------------------------------- compaction */

/** Events sako_compact() always leaves in the log, whatever the options: the next
 *  retrain's quality gate replays the most recent events. */
#define SAKO_COMPACT_MIN_EVENTS 10000

/** The retention window of sako_compact(). */
typedef struct sako_compact_options {
    unsigned version;       /**< ::SAKO_COMPACT_OPTIONS_VERSION */
    double keep_days;       /**< keep every batch holding an event less than this many
                                 days older than the log's latest event (0: no window) */
    uint64_t keep_events;   /**< keep at least this many of the latest events (raised to
                                 ::SAKO_COMPACT_MIN_EVENTS and to the retrain policy's
                                 gate_holdout_events) */
} sako_compact_options;

#define SAKO_COMPACT_OPTIONS_VERSION 1
/** The defaults: 30 days and at least 100,000 events. */
#define SAKO_COMPACT_OPTIONS_INIT { SAKO_COMPACT_OPTIONS_VERSION, 30.0, 100000 }

/** What sako_compact() did. */
typedef struct sako_compact_report {
    int64_t compact_batch;      /**< the log checkpoint's batch after the call: the log
                                     starts after it (0: never compacted) */
    int64_t first_batch;        /**< the first batch left in the log (0: none) */
    uint64_t batches_removed;   /**< batches deleted by this call */
    uint64_t events_removed;    /**< events in them */
    uint64_t checkpoint_bytes;  /**< size of the checkpoint written (0: none written) */
    double elapsed_ms;          /**< wall time of the call */
} sako_compact_report;

/**
 * Compact the event log: fold the batches up to a compaction point C into a
 * checkpoint of everything a replay holds at C (item counts and their decay frame,
 * purchase histories, product demand, partners) and delete them, so that the file
 * stops growing under steady traffic. Reopening and sako_retrain() start from the
 * checkpoint and give bit for bit what they gave before.
 *
 * C is the latest batch that (a) is followed by at least opt->keep_events events
 * (never fewer than ::SAKO_COMPACT_MIN_EVENTS nor the policy's gate_holdout_events,
 * so that the next retrain's gate scores a whole holdout) and holds, like every batch before it, no event within opt->keep_days of the
 * log's latest event; (b) is at or before the latest retrain's activation (its
 * policy counters and the next retrain's gate read the events after it): before a
 * first sako_retrain() nothing is compacted; (c) is in the regular checkpoint of
 * item counts (one is written first if needed). With no such batch the call does
 * nothing and returns SAKO_OK.
 *
 * The state at C is rebuilt off the writer mutex on a second connection, like a
 * retrain's; the checkpoint is written in chunks of about 1 MiB, each its own short
 * transaction under the writer mutex, then switched to in one transaction, then the
 * old batches are deleted about 32,768 events per transaction: sako_update() waits
 * at most one such step and sako_recommend() never. A crash at any moment leaves a
 * file that reopens exactly (the switch decides which checkpoint counts). Freed
 * pages are reused by later writes: the file stops growing but does not shrink.
 * After a compaction the parameters the checkpoint's state depends on
 * (half_life_days, basket_gap_ms, decay_half_life_days) cannot be reconfigured.
 * @param[in]  opt  the retention window; NULL for ::SAKO_COMPACT_OPTIONS_INIT
 * @param[out] out  what was done (may be NULL)
 * @return SAKO_OK; SAKO_MISUSE (NULL engine); SAKO_INVALID (bad options: version,
 *         keep_days negative or not finite, keep_events above 2^53-1); SAKO_BUSY (a
 *         retrain or another compaction of this engine runs); SAKO_CORRUPT (a batch
 *         or the current checkpoint is damaged: nothing is changed); SAKO_IO;
 *         SAKO_NOMEM.
 * @note Thread-safe; may run concurrently with every call but sako_close().
 *       sako_retrain() during a compaction returns SAKO_BUSY. @since 0.4
 */
SAKO_API int sako_compact(sako_engine *engine, const sako_compact_options *opt,
                          sako_compact_report *out);

/** The size of the event log and of the file (sako_log_stats()). */
typedef struct sako_log_stats {
    uint64_t n_batches;         /**< batches in the log (after the compaction point) */
    uint64_t n_events;          /**< events in them */
    int64_t first_batch;        /**< first and last batch in the log (0: none) */
    int64_t last_batch;
    int64_t compact_batch;      /**< the log checkpoint's batch (0: never compacted) */
    uint64_t compacted_events;  /**< events folded into it */
    uint64_t checkpoint_bytes;  /**< size of the log checkpoint's chunks */
    uint64_t file_bytes;        /**< the database file (pages in use and free) */
    uint64_t free_bytes;        /**< of which free pages, reused by later writes */
} sako_log_stats;

/**
 * The size of the event log and of the database file, for monitoring.
 * @param[out] out  the figures
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or out); SAKO_IO; SAKO_CORRUPT.
 * @note Thread-safe; reads through the engine's connection under the writer
 *       mutex (counters, the file header and an index lookup: no scan of the
 *       log). @since 0.4
 */
SAKO_API int sako_log_stats_get(sako_engine *engine, sako_log_stats *out);

/* ------------------------------------------------- matrix factorisation */

/**
 * A sparse matrix in CSR form (compressed rows), read only: row r holds the
 * columns indices[indptr[r] .. indptr[r+1]-1], ascending and without duplicates,
 * with their values, each > 0 and finite (a raw interaction strength r_ui).
 * indptr has n_rows + 1 entries and indptr[0] = 0. n_rows and n_cols are at most
 * INT32_MAX; either may be 0.
 */
typedef struct sako_csr {
    size_t n_rows, n_cols;
    const int64_t *indptr;   /**< n_rows + 1 entries, indptr[0] = 0, non-decreasing */
    const int32_t *indices;  /**< indptr[n_rows] column indices in [0, n_cols) */
    const float *values;     /**< indptr[n_rows] values, > 0 and finite */
} sako_csr;

/**
 * Options of implicit ALS (Hu, Koren, Volinsky 2008) with conjugate-gradient row
 * solves (Takács, Pilászy, Tikk 2011). Confidence c_ui = 1 + alpha * r_ui and
 * preference p_ui = 1 for stored entries, c_ui = 1 and p_ui = 0 elsewhere; the loss
 * is sum over all (u, i) of c_ui (p_ui - x_u.y_i)^2 + regularization * (sum |x_u|^2 +
 * sum |y_i|^2). The `implicit` package (0.7) uses c_ui = alpha * r_ui instead: the
 * same model as `implicit` with alpha = 1 on the values 1 + alpha * r_ui
 * (docs/c-api.md, "Matrix factorisation"). Initialise with ::SAKO_MF_OPTIONS_INIT.
 */
typedef struct sako_mf_options {
    unsigned version;        /**< ::SAKO_MF_OPTIONS_VERSION */
    uint32_t factors;        /**< k, the length of a factor vector: 1..1024 (64) */
    uint32_t iterations;     /**< ALS iterations, each solving every row then every column:
                                  1..10000 (15) */
    double regularization;   /**< lambda: >= 0, finite, at most 1e12 (0.01) */
    double alpha;            /**< confidence scale: > 0, finite, at most 1e12 (1.0) */
    uint32_t cg_steps;       /**< conjugate-gradient steps per row solve, warm-started from the
                                  row's previous value: 1..factors (3) */
    uint32_t threads;        /**< worker threads; 0 = the online cores; at most 256 (0) */
    uint64_t seed;           /**< initial factors; 0 = the fixed default 0x5a4b4f4d46 (never
                                  the clock) */
} sako_mf_options;

#define SAKO_MF_OPTIONS_VERSION 1
/** The defaults: 64 factors, 15 iterations, regularization 0.01, alpha 1, 3 CG steps,
 *  all online cores, seed 0. */
#define SAKO_MF_OPTIONS_INIT { SAKO_MF_OPTIONS_VERSION, 64, 15, 0.01, 1.0, 3, 0, 0 }

/**
 * Factorise a user x item matrix by implicit ALS with CG row solves: X (n_rows x k)
 * and Y (n_cols x k) such that X Y^T approximates the preferences under the
 * confidences of ::sako_mf_options. Each iteration solves every row of X against
 * the fixed Y, then every row of Y against the fixed X; a row's solve is
 * opt->cg_steps CG steps on (Y^T Y + Y_u^T (C_u - I) Y_u + lambda I) x =
 * Y_u^T C_u p_u, started from the row's current value. Initial factors: uniform in
 * [0, 0.01) from opt->seed, user rows then item rows. float32 factors; Y^T Y is
 * summed in double in a fixed order.
 *
 * Deterministic: the same matrix, options and library build give bit-identical
 * factors, whatever opt->threads (rows are solved independently and Y^T Y is
 * summed over fixed blocks of rows), on any x86-64 (the vector kernels keep one
 * order of operations and no fused multiply-add).
 * @param[in]  r             the matrix (users in rows, items in columns)
 * @param[in]  opt           options; NULL for ::SAKO_MF_OPTIONS_INIT
 * @param[out] user_factors  n_rows x factors floats, row-major (may be NULL when n_rows = 0)
 * @param[out] item_factors  n_cols x factors floats, row-major (may be NULL when n_cols = 0)
 * @return SAKO_OK; SAKO_MISUSE (NULL r, or a NULL factor array for a non-empty side);
 *         SAKO_INVALID (bad options, or a bad matrix: indptr not starting at 0 or
 *         decreasing, a column out of range, not ascending or repeated, a value <= 0 or
 *         not finite; the message names the row and the entry); SAKO_RANGE (n_rows or
 *         n_cols above INT32_MAX, or a factor array larger than the address space);
 *         SAKO_NOMEM. On failure the factor arrays hold unspecified values.
 * @note Thread-safe (no shared state); the caller's arrays must not change during the
 *       call. Memory: a transposed copy of the matrix (12 bytes per entry plus 8 per
 *       column) and a few k x k matrices per thread. @since 0.5
 */
SAKO_API int sako_mf_fit(const sako_csr *r, const sako_mf_options *opt,
                         float *user_factors, float *item_factors);

/**
 * The Gram matrix Y^T Y of a factor matrix, summed in double over fixed blocks of
 * rows (the value sako_mf_fit() uses). Cache it for sako_mf_fold_in().
 * @param[in]  item_factors  n_items x factors floats, row-major (may be NULL when n_items = 0)
 * @param[out] gram          factors x factors doubles, row-major, symmetric
 * @return SAKO_OK; SAKO_MISUSE (NULL gram, or NULL item_factors with n_items > 0);
 *         SAKO_INVALID (factors not in 1..1024); SAKO_RANGE (n_items above INT32_MAX);
 *         SAKO_NOMEM.
 * @note Thread-safe; one thread, O(n_items k^2). @since 0.5
 */
SAKO_API int sako_mf_gram(const float *item_factors, size_t n_items, uint32_t factors,
                          double *gram);

/**
 * Fold in one row (a user) against fixed item factors: x = argmin of that row's
 * loss, the solve one half-iteration of sako_mf_fit() performs for it. With exact =
 * 0, opt->cg_steps CG steps started from `x` (a warm start: the user's previous
 * vector, or zeros); with exact = 1, the exact solution (Cholesky, in double), `x`
 * ignored on entry. Items need not be sorted; an item may not repeat.
 * @param[in]     item_factors  n_items x opt->factors floats, row-major
 * @param[in]     gram          Y^T Y from sako_mf_gram() (without lambda), or NULL to
 *                              compute it here (O(n_items k^2): cache it)
 * @param[in]     items         n item indices in [0, n_items) (NULL when n = 0)
 * @param[in]     values        their values r_ui, > 0 and finite (NULL when n = 0)
 * @param[in]     opt           factors, regularization, alpha, cg_steps (the other
 *                              fields are checked but unused); NULL for the defaults
 * @param[in,out] x             opt->factors floats: warm start in, solution out
 * @return SAKO_OK; SAKO_MISUSE (NULL x or item_factors, or NULL items/values with
 *         n > 0); SAKO_INVALID (bad options, exact not 0 or 1, an item out of range or
 *         repeated, a bad value, a non-finite warm start or gram; the message names the
 *         entry; or, with exact = 1, a system that is not positive definite, possible
 *         only with regularization 0); SAKO_RANGE (n_items above INT32_MAX); SAKO_NOMEM.
 *         On failure x is unchanged.
 * @note Thread-safe; allocates k x k scratch per call. About 30 us for 200 items at
 *       k = 64 with a cached gram (docs/benchmarks.md). @since 0.5
 */
SAKO_API int sako_mf_fold_in(const float *item_factors, size_t n_items, const double *gram,
                             const int32_t *items, const float *values, size_t n,
                             const sako_mf_options *opt, int exact, float *x);

/* ------------------------------------------------------------- replication */

/**
 * Replicas (0.5, issue 11). A replica applies the batches of an external ordered log
 * (e.g. a NATS JetStream stream) with the `_at` calls below, each at the batch's
 * position in that log. The position of the last batch applied is stored in the
 * same transaction as the batch, so that a replica killed at any moment resumes
 * after exactly the last batch its file holds, and a batch at or below the stored
 * position is skipped (a redelivery is harmless). Positions must increase; gaps are
 * allowed (other subjects of the stream). Every replica of one log must be opened
 * with the same model options and the same unknown_items.
 *
 * A batch that fails validation (::SAKO_INVALID, ::SAKO_NOTFOUND, ::SAKO_RANGE) is a
 * function of the log, so every replica fails it the same way: it is rejected whole
 * and its position is still consumed (in its own transaction), or every replica
 * would stall on it. A publisher therefore validates a batch before publishing it
 * (against a replica's catalog, or with a dry run). Any other failure (::SAKO_IO,
 * ::SAKO_BUSY, ::SAKO_NOMEM, ::SAKO_MISUSE) leaves the position alone: retry.
 *
 * Inputs must not depend on the replica's clock: an event time or an item's
 * added_at of 0 ("now") is refused with ::SAKO_INVALID (the publisher resolves it),
 * and an item an event creates (::SAKO_UNKNOWN_CREATE) is added at the batch's
 * latest event time. A prior refresh a batch makes due is finished before the call
 * returns (a large catalog's background refresh included), so that it lands between
 * the same two batches on every replica.
 */

/** What an `_at` call did with its batch (its outcome_out). */
typedef enum sako_at_outcome {
    SAKO_AT_NONE = 0,     /**< nothing: a failure that leaves the position (retry) */
    SAKO_AT_APPLIED = 1,  /**< applied; the position is stored with it */
    SAKO_AT_SKIPPED = 2,  /**< at or below the stored position: already applied (or
                               rejected) before; nothing changed */
    SAKO_AT_REJECTED = 3  /**< failed validation (the status says why); the position
                               is consumed, nothing else changed */
} sako_at_outcome;

/**
 * The position of the last batch applied with an `_at` call (0: none).
 * @param[out] position_out  the position
 * @return SAKO_OK; SAKO_MISUSE (NULL engine or position_out).
 * @note Thread-safe. @since 0.5
 */
SAKO_API int sako_log_position(sako_engine *engine, int64_t *position_out);

/**
 * sako_update_orders() at a log position: applied and stored with the position in
 * one transaction, or skipped when position is at or below the stored one.
 * @param[in]  position     the batch's position in the log, in [1, INT64_MAX]
 * @param[in]  order_ids    n order ids, or NULL
 * @param[out] outcome_out  a ::sako_at_outcome (may be NULL)
 * @return SAKO_OK (applied or skipped); SAKO_MISUSE; SAKO_INVALID (position < 1:
 *         nothing consumed; or a bad event, a time of 0 included: rejected, position
 *         consumed); SAKO_NOTFOUND, SAKO_RANGE (rejected, position consumed);
 *         SAKO_IO, SAKO_BUSY, SAKO_NOMEM (position not consumed: retry).
 * @note Serialised with the writers. @since 0.5
 */
SAKO_API int sako_update_at(sako_engine *engine, int64_t position, const sako_event *events,
                            const int64_t *order_ids, size_t n, int *outcome_out);

/**
 * sako_items_upsert() at a log position (an added_at of 0 is refused: rejected).
 * @return as sako_update_at(). @since 0.5
 */
SAKO_API int sako_items_upsert_at(sako_engine *engine, int64_t position, const sako_item *items,
                                  size_t n, int *outcome_out);

/**
 * sako_categories_upsert() at a log position.
 * @return as sako_update_at(). @since 0.5
 */
SAKO_API int sako_categories_upsert_at(sako_engine *engine, int64_t position,
                                       const sako_category *cats, size_t n, int *outcome_out);

/**
 * sako_retrain_v2() at a log position: the position is stored in the transaction
 * that records the new version (activated or not), so a replica killed during the
 * retrain retrains again after the restart and one killed after it does not. Every
 * replica retrains on the same log, so all fit the same model (the version's
 * created_at, from the wall clock, is the only field that differs).
 * @param[in] reasons  ::sako_retrain_reason bits, not 0
 * @return SAKO_OK (applied or skipped); SAKO_MISUSE; SAKO_INVALID (position < 1 or
 *         bad reasons: nothing consumed); SAKO_BUSY (another retrain or a compaction
 *         runs: retry); SAKO_IO; SAKO_NOMEM; SAKO_CORRUPT.
 * @note Serialised with the writers. @since 0.5
 */
SAKO_API int sako_retrain_at(sako_engine *engine, int64_t position, unsigned reasons,
                             int *outcome_out);

/* ------------------------------------------------------------- diagnostics */

/** SAKO_VERSION_NUMBER of the library actually linked. @since 0.1 */
SAKO_API int sako_version_number(void);
/** SAKO_VERSION_STRING of the library actually linked. @since 0.1 */
SAKO_API const char *sako_version_string(void);
/** A static description of a status code ("unknown status" for others). @since 0.1 */
SAKO_API const char *sako_errstr(int status);
/** The detailed message of this thread's last failed call ("" after success). Owned
 *  by the library; valid until this thread's next libsako call. @since 0.1 */
SAKO_API const char *sako_errmsg(void);
/** 1: the library was built thread-safe (always, in this version). @since 0.1 */
SAKO_API int sako_threadsafe(void);

#ifdef __cplusplus
}
#endif
#endif /* SAKO_H */
