// The Function App on Flex Consumption (Python 3.11): the HTTP collector and the Event Hubs capture
// function. Everything it talks to is reached with its user-assigned managed identity; the one
// secret (the app registry) comes from Key Vault through a Key Vault reference.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Function App (globally unique: it becomes <name>.azurewebsites.net).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('azd service name, tagged on the site so that azd deploy finds it.')
param serviceName string

@description('Resource ID of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client ID of that identity (identity-based connections and DefaultAzureCredential need it).')
param identityClientId string

@description('Name of the host storage account (AzureWebJobsStorage).')
param hostStorageName string

@description('Blob endpoint of the host storage account.')
param hostStorageBlobEndpoint string

@description('Container in the host storage account that holds the deployment package.')
param deploymentContainerName string

@description('Memory per instance in MB; CPU is allotted in proportion.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Most instances the app scales out to, across all its functions; caps the bill.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Concurrent HTTP requests one instance takes before Flex Consumption adds another. The collector is async and mostly waits on Event Hubs.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Also send FunctionAppLogs to Log Analytics. Application Insights already receives the same logs, so this doubles log ingestion.')
param sendFunctionAppLogs bool

@description('Origins the platform answers CORS requests for. Empty leaves CORS to the collector, which checks the allowed origins of each app.')
param corsAllowedOrigins array

@description('Application Insights connection string (not a secret: local auth is off).')
param appInsightsConnectionString string

@description('Event Hubs namespace host name, e.g. evhns-x.servicebus.windows.net.')
param eventHubFullyQualifiedNamespace string

@description('Hub the collector sends to and the capture function reads.')
param eventHubName string

@description('Consumer group of the capture function.')
param captureConsumerGroup string

@description('Blob endpoint of the lake account.')
param lakeBlobEndpoint string

@description('Filesystem that holds events/, rejected/ and failed/.')
param lakeFilesystemName string

@description('Blob endpoint of the salt account (no soft delete).')
param saltBlobEndpoint string

@description('Container that holds the daily salts.')
param saltContainerName string

@description('Table that holds the capture state.')
param stateTableName string

@description('Name of the Key Vault that holds the app registry.')
param keyVaultName string

@description('Name of the Key Vault secret that holds the app registry JSON.')
param appsSecretName string

@description('Path of a MaxMind-format city .mmdb the worker can read; empty turns geo enrichment off.')
param geoDbPath string

@description('Proxy hops in front of the app whose X-Forwarded-For entries are trusted.')
@minValue(0)
param trustedHops int

@description('Comma-separated proxy addresses or CIDRs trusted to set X-Forwarded-For.')
param trustedProxies string

@description('Largest accepted request body in bytes (compressed, and again after gzip).')
@minValue(1024)
param maxBodyBytes int

@description('Seconds of inactivity that end a session.')
@minValue(1)
param sessionTimeoutSeconds int

@description('(app_id, event_id) pairs remembered per partition to flag duplicates.')
@minValue(0)
param dedupWindow int

@description('Avro block codec of the lake files.')
@allowed([
  'null'
  'deflate'
  'snappy'
  'zstandard'
])
param avroCodec string

@description('Log level of the hubcap workers.')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
param logLevel string

@description('Resource ID of the Log Analytics workspace that receives the diagnostic logs.')
param workspaceId string

@description('The app\'s entry script: function_app.py (collector, capture, compaction) or firehose_app.py (the firehose), both from the same package.')
@allowed([
  'function_app.py'
  'firehose_app.py'
])
param entryScript string = 'function_app.py'

@description('Per-app overrides of host.json (AzureFunctionsJobHost__… settings), e.g. the firehose\'s small, quick Event Hubs batches.')
param hostOverrides object = {}

@description('Consumer group of the firehose function.')
param firehoseConsumerGroup string

@description('Milliseconds the firehose waits for a destination before queuing the batch for retry.')
@minValue(1)
param firehoseWaitMs int = 1000

@description('Branded link domain served at its root (https://<domain>/<slug>); empty binds none.')
param linkDomain string = ''

@description('Consumer group of the inspector function (firehose_app.py).')
param inspectConsumerGroup string = 'inspect'

@description('Test apps whose events the inspector keeps in memory and serves, comma-separated; empty (the default) turns the inspector off. Name only test apps that have a server key: requests must carry it.')
param inspectApps string = ''

// Names equal the code's settings (workers/settings.py SETTING_NAMES) plus the host and platform
// settings that tests/unit/test_settings_names.py allow-lists; that test keeps them in step.
var appSettings = {
  // Functions host storage, reached with the managed identity (shared keys are off).
  AzureWebJobsStorage__accountName: hostStorageName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The Event Hubs trigger (host) and DefaultAzureCredential (workers) pick the user-assigned identity.
  EventHubConnection__credential: 'managedidentity'
  EventHubConnection__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  // Connection strings stay empty in Azure: local auth is off, so the host and the workers take the
  // identity-based branch (EventHubConnection__fullyQualifiedNamespace, HUBCAP_LAKE_ACCOUNT_URL).
  EventHubConnection: ''
  EventHubConnection__fullyQualifiedNamespace: eventHubFullyQualifiedNamespace
  HUBCAP_EVENTHUB_NAME: eventHubName
  HUBCAP_CAPTURE_CONSUMER_GROUP: captureConsumerGroup
  HUBCAP_LAKE_CONNECTION: ''
  HUBCAP_LAKE_ACCOUNT_URL: lakeBlobEndpoint
  HUBCAP_LAKE_FILESYSTEM: lakeFilesystemName
  HUBCAP_LAKE_API: 'dfs'
  HUBCAP_SALT_ACCOUNT_URL: saltBlobEndpoint
  HUBCAP_SALT_CONTAINER: saltContainerName
  HUBCAP_STATE_TABLE: stateTableName
  // The registry comes from Key Vault; a file path is for the local stack only.
  HUBCAP_APPS_FILE: ''
  HUBCAP_APPS_JSON: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${appsSecretName})'
  HUBCAP_GEO_DB: geoDbPath
  HUBCAP_TRUSTED_HOPS: string(trustedHops)
  HUBCAP_TRUSTED_PROXIES: trustedProxies
  HUBCAP_MAX_BODY_BYTES: string(maxBodyBytes)
  HUBCAP_SESSION_TIMEOUT_S: string(sessionTimeoutSeconds)
  HUBCAP_DEDUP_WINDOW: string(dedupWindow)
  HUBCAP_AVRO_CODEC: avroCodec
  HUBCAP_LOG_LEVEL: logLevel
  // The firehose: retries on the documented schedule, webhooks only to public https addresses.
  HUBCAP_FIREHOSE_CONSUMER_GROUP: firehoseConsumerGroup
  HUBCAP_FIREHOSE_ALLOW_PRIVATE: 'false'
  HUBCAP_FIREHOSE_WAIT_MS: string(firehoseWaitMs)
  HUBCAP_FIREHOSE_TIMEOUT_S: '15'
  HUBCAP_FIREHOSE_RETRY_SCHEDULE_S: '5,300,1800,7200,18000,36000,36000'
  HUBCAP_FIREHOSE_GIVE_UP_S: '432000'
  // Live metrics (firehose_app.py): counter rows in the lake account's metrics table.
  HUBCAP_METRICS_CONSUMER_GROUP: 'metrics'
  HUBCAP_METRICS_TABLE: 'hubcapmetrics'
  HUBCAP_METRICS_RETENTION_DAYS: '90'
  // Branded links: the link table and the click spool live in the lake's account, like the state table.
  HUBCAP_LINKS_TABLE: 'hubcaplinks'
  HUBCAP_LINKS_CACHE_TTL_S: '5'
  HUBCAP_LINKS_HUB_DEADLINE_MS: '50'
  HUBCAP_LINKS_SPOOL_CONTAINER: 'linkspool'
  // The inspector: off unless test apps are named (main.bicep's inspectApps).
  HUBCAP_INSPECT_CONSUMER_GROUP: inspectConsumerGroup
  HUBCAP_INSPECT_APPS: inspectApps
  HUBCAP_INSPECT_MAX_EVENTS: '10000'
  HUBCAP_INSPECT_MAX_BYTES: '16777216'
}

// What differs between the two apps deployed from the package: the entry script (each app indexes only
// its own functions) and the host.json overrides.
var appRoleSettings = union({ PYTHON_SCRIPT_FILE_NAME: entryScript }, hostOverrides)

var functionAppLogs = [
  {
    category: 'FunctionAppLogs'
    enabled: true
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption depends on the region; set zoneRedundant on the plan where the region offers it
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the collector is a public endpoint: browsers anywhere post events to it
  // checkov:skip=CKV_AZURE_17: browsers sending events cannot present client certificates; apps authenticate with the registry (origin, server key)
  // checkov:skip=CKV_AZURE_212: scale to zero is intended (no cost at idle); always-ready instances are an opt-in that bills around the clock
  // checkov:skip=CKV_AZURE_213: the platform health check steers traffic within a fixed instance pool; this app scales to zero, and GET /api/health serves external availability tests
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
      appSettings: [
        for setting in items(union(appSettings, appRoleSettings)): {
          name: setting.key
          value: setting.value
        }
      ]
    }
  }
}

// Deployments (azd, func publish) authenticate with Entra ID; publishing user names and passwords stay off.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspaceId
    logs: sendFunctionAppLogs ? functionAppLogs : []
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// Branded links: the domain's CNAME (to the app's default host name) and its asuid TXT record must
// exist before this binding; the certificate is a second step (docs/deploy.md, Branded links).
resource linkDomainBinding 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = if (!empty(linkDomain)) {
  parent: site
  name: empty(linkDomain) ? 'unused' : linkDomain
  properties: {
    siteName: site.name
    hostNameType: 'Verified'
    customHostNameDnsRecordType: 'CName'
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
